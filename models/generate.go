package models

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Steering adds Coeff·Vector to the residual stream entering block Layer, at
// every position of the prompt and of the reply (activation addition).
type Steering struct {
	Layer  int
	Coeff  float32
	Vector []float32 // [d_model]
}

// Sampling picks each next token. The zero value is greedy decoding (the
// first maximum, as torch.argmax); with Temperature > 0 tokens are sampled
// after temperature, top-k and top-p filtering, in Hugging Face's order.
type Sampling struct {
	Temperature float64
	TopK        int     // 0: off
	TopP        float64 // 0 or 1: off
}

// Greedy reports whether s decodes greedily.
func (s Sampling) Greedy() bool { return s.Temperature <= 0 }

// String describes s as metadata records it.
func (s Sampling) String() string {
	if s.Greedy() {
		return "greedy"
	}
	return fmt.Sprintf("temperature %g, top-p %g, top-k %d", s.Temperature, s.TopP, s.TopK)
}

// GenerateOptions control a batched generation.
type GenerateOptions struct {
	MaxNewTokens int
	Sampling     // the zero value decodes greedily
	// Seed drives sampling. Each row draws from its own generator seeded by
	// (Seed, RowSeeds[i]) — RowSeeds defaults to the row index — so a
	// completion does not depend on which batch it was generated in.
	Seed     uint64
	RowSeeds []uint64
	// Capture returns each row's mean residual stream over its own reply
	// tokens (generated ids up to, not including, the stop token).
	Capture bool
	// Steer applies to every row; SteerRows, when set, gives each row its own.
	Steer     []Steering
	SteerRows [][]Steering
	// Ablate, when set, is a unit direction removed everywhere (see Interventions.Ablate).
	Ablate []float32
	// IgnoreStop generates exactly MaxNewTokens tokens, through stop tokens
	// (for comparisons with references that do the same).
	IgnoreStop bool
	// OnStep, when set, is called after every decoding step.
	OnStep func(step, maxSteps int)

	// Naive prefills every row, even rows sharing a prompt, and runs every
	// decoding step on the whole batch until its last row ends (the
	// benchmark's naive baseline; results are the same within float
	// rounding).
	Naive bool
	// Lean compiles a program with only the interventions asked for. By
	// default every generation runs one shared program whose capture and
	// steering inputs are always wired in (an empty mask, zero steering when
	// unused), so extraction and evaluation reuse each other's compiled
	// shapes: each compile costs memory that stays resident with XLA, while
	// the unused inputs cost nothing measurable. Naive implies Lean.
	Lean bool

	streams bool // keep the stream entering every block (LayerSweep)
}

// Generation is the result of GenerateIDs, one entry per prompt.
type Generation struct {
	Tokens  [][]int32 // generated ids; ends with the stop token when Stopped
	Text    []string  // decoded reply without the stop token and special tokens
	Stopped []bool    // the reply ended on a stop token (else it hit MaxNewTokens)
	// Means[i] is row i's mean residual stream over its reply tokens,
	// [n_layers+1][d_model], with Capture; nil for a row with an empty reply.
	Means [][][]float64
	// Steps counts decoding steps run (the loop stops when every row has stopped).
	Steps int
	// Prefill and Decode are the wall times of the two phases (decoding includes sampling).
	Prefill, Decode time.Duration
	// TokensProcessed counts token positions run through the model, padding
	// included: what the compute was spent on.
	TokensProcessed int
}

// ReplyIDs returns the reply tokens of row i without the stop token: the
// tokens averaged by Capture.
func (g *Generation) ReplyIDs(i int) []int32 {
	if g.Stopped[i] {
		return g.Tokens[i][:len(g.Tokens[i])-1]
	}
	return g.Tokens[i]
}

// EncodeOptions control how user text is tokenized.
type EncodeOptions struct {
	// ParseSpecialTokens reads special-token spellings in user text (e.g.
	// "<|im_end|>" in a user message) as the control tokens they spell, as
	// transformers' apply_chat_template does. Off by default: then user text
	// is text, and only the chat template's own markers are control tokens,
	// so a user message cannot end its turn or open another.
	ParseSpecialTokens bool
}

// EncodePrompt renders one user message with the chat template and tokenizes
// it; special-token spellings in the message are plain text (see
// EncodeOptions). For a message without any, the ids are those of the
// rendered text tokenized as a whole.
func (m *Model) EncodePrompt(userMessage string) (text string, ids []int32, err error) {
	return m.EncodePromptWith(userMessage, EncodeOptions{})
}

// EncodePromptWith is EncodePrompt with options.
func (m *Model) EncodePromptWith(userMessage string, opts EncodeOptions) (text string, ids []int32, err error) {
	if m.Template == nil {
		return "", nil, ErrNoChatTemplate
	}
	if opts.ParseSpecialTokens {
		if text, err = m.Template.UserPrompt(userMessage); err != nil {
			return "", nil, err
		}
		ids, err = m.Tokenizer.Encode(text)
		return text, ids, err
	}
	text, spans, err := m.Template.UserPromptSpans(userMessage)
	if err != nil {
		return "", nil, err
	}
	ids, err = m.Tokenizer.EncodeTemplated(text, spans)
	return text, ids, err
}

// EncodeRaw tokenizes text as given, with no chat template, prepending BOS
// when the tokenizer does so for raw text (Config.AddBOS), as transformers'
// tokenizer(text) does. The text is all user text: special-token spellings
// in it stay text (see EncodeOptions).
func (m *Model) EncodeRaw(text string) ([]int32, error) {
	return m.EncodeRawWith(text, EncodeOptions{})
}

// EncodeRawWith is EncodeRaw with options.
func (m *Model) EncodeRawWith(text string, opts EncodeOptions) ([]int32, error) {
	var ids []int32
	var err error
	if opts.ParseSpecialTokens {
		ids, err = m.Tokenizer.Encode(text)
	} else {
		ids, err = m.Tokenizer.EncodeTemplated(text, []Span{{Start: 0, End: len(text)}})
	}
	if err != nil {
		return nil, err
	}
	if m.Config.AddBOS && m.Config.BOS >= 0 && (len(ids) == 0 || ids[0] != m.Config.BOS) {
		ids = append([]int32{m.Config.BOS}, ids...)
	}
	return ids, nil
}

// Generate renders each user message with the chat template and generates replies.
func (m *Model) Generate(userMessages []string, opts GenerateOptions) (*Generation, error) {
	prompts := make([][]int32, len(userMessages))
	for i, u := range userMessages {
		_, ids, err := m.EncodePrompt(u)
		if err != nil {
			return nil, err
		}
		prompts[i] = ids
	}
	return m.GenerateIDs(prompts, opts)
}

// bucket rounds n up to a multiple of step, so that the few compiled shapes
// are reused across batches.
func bucket(n, step int) int { return (n + step - 1) / step * step }

// Prompts are padded to a multiple of promptBucket tokens and KV caches to a
// multiple of cacheBucket slots. Coarse on purpose: every distinct shape is
// another compiled program, and XLA keeps ~30 MiB resident per program; the
// padding costs little (a prefill is a small share of a generation, and
// attention over the extra slots is cheap next to the weight products).
const (
	promptBucket = 32
	cacheBucket  = 64
)

// GenerateIDs generates replies for a batch of tokenized prompts, left-padded
// into one KV cache of static shape: one compiled prefill and one compiled
// decoding step serve the whole batch, with no recompilation per token.
func (m *Model) GenerateIDs(prompts [][]int32, opts GenerateOptions) (*Generation, error) {
	if len(prompts) == 0 {
		return &Generation{}, nil
	}
	longest, err := m.checkPrompts(prompts, opts.MaxNewTokens)
	if err != nil {
		return nil, err
	}
	B := len(prompts)
	uniq, rowOf := distinctPrompts(prompts, opts)
	s, err := m.newSession(uniq, bucket(longest, promptBucket), opts)
	if err != nil {
		return nil, err
	}
	defer s.close() // on every path: the KV cache lives on the device
	gen := &Generation{Tokens: make([][]int32, B), Text: make([]string, B), Stopped: make([]bool, B)}
	rngs := rowGenerators(B, opts)
	var sums *captureSums
	if opts.Capture {
		sums = newCaptureSums(&m.Config, B)
	}

	start := time.Now()
	logits, err := s.prefill(rowOf, prompts, opts)
	if err != nil {
		return nil, err
	}
	V := m.Config.VocabSize
	gen.Prefill = time.Since(start)
	gen.TokensProcessed = len(uniq) * s.prefillLen
	start = time.Now()
	// rows[r] is the row fed in the session's batch slot r. Once the rows
	// still feeding fit in half the batch (a power of two), the session is
	// compacted to that size, once: each batch size is another compiled
	// program, and XLA keeps ~30 MiB resident per program.
	half := 1
	for half < (B+1)/2 {
		half *= 2
	}
	rows := make([]int, B)
	for b := range rows {
		rows[b] = b
	}
	for step := 0; ; step++ {
		// Choose each active row's next token from the last logits, and mark
		// the slots to feed: rows that will sample again, and, with Capture,
		// rows whose last reply token is still to be read.
		next := make([]int32, len(rows))
		mask := make([]float32, len(rows))
		feed := 0
		sampleStart := time.Now()
		for r, b := range rows {
			if gen.Stopped[b] || len(gen.Tokens[b]) >= opts.MaxNewTokens {
				continue
			}
			tok := sampleToken(logits[r*V:(r+1)*V], &opts.Sampling, rngs[b])
			gen.Tokens[b] = append(gen.Tokens[b], tok)
			next[r] = tok
			if !opts.IgnoreStop && slices.Contains(m.StopTokens, tok) {
				gen.Stopped[b] = true
			} else {
				mask[r] = 1 // a reply token: its residual stream is captured when it is fed
				feed++
			}
		}
		sampled := time.Since(sampleStart)
		// Feed the chosen tokens. When no row will sample again, this last
		// step is only needed to capture the final reply tokens.
		moreToSample := false
		for _, b := range rows {
			if !gen.Stopped[b] && len(gen.Tokens[b]) < opts.MaxNewTokens {
				moreToSample = true
			}
		}
		if !moreToSample && (!opts.Capture || feed == 0) {
			break
		}
		if !opts.Naive && len(rows) == B && feed <= half {
			if rows, next, mask, err = s.compact(rows, next, mask, prompts, opts, half); err != nil {
				return nil, err
			}
		}
		var captured, stepMask []float32
		if opts.Capture {
			stepMask = mask
		}
		stepStart := time.Now()
		logits, captured, err = s.step(next, 1, s.prefillLen+step, stepMask)
		if err != nil {
			return nil, err
		}
		m.count(func(st *Stats) {
			st.DecodeSteps++
			st.DecodeRows += len(rows)
			st.DecodeIdle += len(rows) - feed
			st.DecodeTime += time.Since(stepStart)
			st.SampleTime += sampled
		})
		gen.Steps++
		gen.TokensProcessed += len(rows)
		if opts.Capture {
			sums.add(captured, mask, rows)
		}
		if opts.OnStep != nil {
			opts.OnStep(step+1, opts.MaxNewTokens)
		}
		if !moreToSample {
			break
		}
	}
	gen.Decode = time.Since(start)

	for b := range B {
		gen.Text[b] = m.Tokenizer.Decode(gen.ReplyIDs(b))
	}
	if opts.Capture {
		gen.Means = sums.means()
	}
	return gen, nil
}

// checkPrompts validates a batch against the context and returns its longest prompt.
func (m *Model) checkPrompts(prompts [][]int32, maxNewTokens int) (int, error) {
	if maxNewTokens <= 0 {
		return 0, fmt.Errorf("max_new_tokens must be positive, got %d", maxNewTokens)
	}
	longest := 0
	for i, p := range prompts {
		if len(p) == 0 {
			return 0, fmt.Errorf("prompt %d is empty", i)
		}
		longest = max(longest, len(p))
	}
	if longest+maxNewTokens > m.Config.ContextLength {
		return 0, fmt.Errorf("prompt of %d tokens plus max_new_tokens %d exceeds the model's context of %d tokens: shorten the prompt or lower --max_new_tokens", longest, maxNewTokens, m.Config.ContextLength)
	}
	return longest, nil
}

// rowGenerators gives each row its own generator, seeded by (Seed, RowSeeds[i]).
func rowGenerators(B int, opts GenerateOptions) []*rand.Rand {
	rngs := make([]*rand.Rand, B)
	for i := range B {
		rowSeed := uint64(i)
		if i < len(opts.RowSeeds) {
			rowSeed = opts.RowSeeds[i]
		}
		rngs[i] = rand.New(rand.NewPCG(opts.Seed, rowSeed))
	}
	return rngs
}

// captureSums accumulates each row's residual-stream sums over its reply
// tokens, in float64: sums over many tokens stay exact enough.
type captureSums struct {
	layers, d int
	sums      [][]float64 // [B][(n_layers+1)*d_model]
	counts    []int
}

func newCaptureSums(c *Config, B int) *captureSums {
	cs := &captureSums{layers: c.NumLayers + 1, d: c.DModel, sums: make([][]float64, B), counts: make([]int, B)}
	for i := range cs.sums {
		cs.sums[i] = make([]float64, cs.layers*cs.d)
	}
	return cs
}

// add adds one step's captured sums [n_layers+1, slots, d_model] for the
// slots whose mask is 1; rows[r] is the row in slot r.
func (cs *captureSums) add(captured []float32, mask []float32, rows []int) {
	for r, b := range rows {
		if mask[r] == 0 {
			continue
		}
		cs.counts[b]++
		addRow(cs.sums[b], captured, r, len(rows), cs.layers, cs.d)
	}
}

// means returns each row's mean, nil for a row with no reply token.
func (cs *captureSums) means() [][][]float64 {
	out := make([][][]float64, len(cs.sums))
	for b := range out {
		if cs.counts[b] > 0 {
			out[b] = splitMeans(cs.sums[b], cs.counts[b], cs.layers, cs.d)
		}
	}
	return out
}

// shared reports whether a generation runs the shared program (see Lean).
// Forward (MaxNewTokens 0) and the layer sweep (streams) have programs of
// their own shapes, so they keep only the inputs they use.
func (o *GenerateOptions) shared() bool {
	return o.MaxNewTokens > 0 && !o.Lean && !o.Naive && !o.streams
}

// distinctPrompts lists each distinct prompt once and maps every row to it.
// Rows with their own steering (SteerRows) are never merged.
func distinctPrompts(prompts [][]int32, opts GenerateOptions) (uniq [][]int32, rowOf []int) {
	rowOf = make([]int, len(prompts))
	if opts.SteerRows != nil || opts.Naive {
		for i := range rowOf {
			rowOf[i] = i
		}
		return prompts, rowOf
	}
	seen := map[string]int{}
	for i, p := range prompts {
		key := fmt.Sprint(p)
		u, ok := seen[key]
		if !ok {
			u = len(uniq)
			seen[key] = u
			uniq = append(uniq, p)
		}
		rowOf[i] = u
	}
	return uniq, rowOf
}

// addRow adds row b of captured sums [layers, B, d] to acc [layers*d], in
// float64: sums over many tokens stay exact enough.
func addRow(acc []float64, captured []float32, b, B, layers, d int) {
	for l := range layers {
		row := captured[(l*B+b)*d : (l*B+b+1)*d]
		for j, v := range row {
			acc[l*d+j] += float64(v)
		}
	}
}

// splitMeans divides flat sums [layers*d] by count into [layers][d].
func splitMeans(sum []float64, count, layers, d int) [][]float64 {
	out := make([][]float64, layers)
	for l := range layers {
		out[l] = make([]float64, d)
		for j := range d {
			out[l][j] = sum[l*d+j] / float64(count)
		}
	}
	return out
}
