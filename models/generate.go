package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// Steering adds Coeff·Vector to the residual stream entering block Layer, at
// every position of the prompt and of the reply (activation addition).
type Steering struct {
	Layer  int
	Coeff  float32
	Vector []float32 // [d_model]
}

// GenerateOptions control a batched generation.
type GenerateOptions struct {
	MaxNewTokens int
	// Temperature 0 is greedy decoding; otherwise tokens are sampled after
	// temperature, top-k (0: off) and top-p (0 or 1: off) filtering, in
	// Hugging Face's order.
	Temperature float64
	TopK        int
	TopP        float64
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

// EncodePrompt renders one user message with the chat template and tokenizes it.
func (m *Model) EncodePrompt(userMessage string) (text string, ids []int32, err error) {
	text, err = m.Template.UserPrompt(userMessage)
	if err != nil {
		return "", nil, err
	}
	ids, err = m.Tokenizer.Encode(text)
	return text, ids, err
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
	if opts.MaxNewTokens <= 0 {
		return nil, fmt.Errorf("max_new_tokens must be positive, got %d", opts.MaxNewTokens)
	}
	longest := 0
	for i, p := range prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("prompt %d is empty", i)
		}
		longest = max(longest, len(p))
	}
	if longest+opts.MaxNewTokens > m.Config.ContextLength {
		return nil, fmt.Errorf("prompt of %d tokens plus max_new_tokens %d exceeds the model's context of %d tokens: shorten the prompt or lower --max_new_tokens", longest, opts.MaxNewTokens, m.Config.ContextLength)
	}
	B := len(prompts)
	uniq, rowOf := distinctPrompts(prompts, opts)
	s, err := m.newSession(uniq, bucket(longest, promptBucket), opts)
	if err != nil {
		return nil, err
	}
	defer s.close() // on every path: the KV cache lives on the device
	gen := &Generation{Tokens: make([][]int32, B), Text: make([]string, B), Stopped: make([]bool, B)}
	rngs := make([]*rand.Rand, B)
	for i := range B {
		rowSeed := uint64(i)
		if i < len(opts.RowSeeds) {
			rowSeed = opts.RowSeeds[i]
		}
		rngs[i] = rand.New(rand.NewPCG(opts.Seed, rowSeed))
	}
	var sums [][]float64 // [B][(n_layers+1)*d_model]
	counts := make([]int, B)
	if opts.Capture {
		sums = make([][]float64, B)
		for i := range sums {
			sums[i] = make([]float64, (m.Config.NumLayers+1)*m.Config.DModel)
		}
	}
	addCapture := func(captured []float32, mask []float32, rows []int) {
		// captured: [n_layers+1, slots, d_model] sums over this step's masked positions.
		L1, D := m.Config.NumLayers+1, m.Config.DModel
		for r, b := range rows {
			if mask[r] == 0 {
				continue
			}
			counts[b]++
			addRow(sums[b], captured, r, len(rows), L1, D)
		}
	}

	// Prefill: the whole (left-padded) prompt; nothing is captured from it.
	// Each distinct prompt is prefilled once and rows sharing it (the n
	// completions of one query) copy its KV cache: the fan-out.
	start := time.Now()
	U := len(s.prompts)
	tokens := make([]int32, U*s.prefillLen)
	for u, p := range s.prompts {
		copy(tokens[u*s.prefillLen+s.pads[u]:], p)
	}
	uniqLogits, _, err := s.step(tokens, s.prefillLen, 0, nil)
	if err != nil {
		return nil, err
	}
	V := m.Config.VocabSize
	logits := uniqLogits
	if U < B {
		if err := s.fanOut(rowOf, prompts, opts); err != nil {
			return nil, err
		}
		logits = make([]float32, B*V)
		for b, u := range rowOf {
			copy(logits[b*V:(b+1)*V], uniqLogits[u*V:(u+1)*V])
		}
	}
	gen.Prefill = time.Since(start)
	gen.TokensProcessed = U * s.prefillLen
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
		for r, b := range rows {
			if gen.Stopped[b] || len(gen.Tokens[b]) >= opts.MaxNewTokens {
				continue
			}
			tok := sampleToken(logits[r*V:(r+1)*V], &opts, rngs[b])
			gen.Tokens[b] = append(gen.Tokens[b], tok)
			next[r] = tok
			if !opts.IgnoreStop && slices.Contains(m.StopTokens, tok) {
				gen.Stopped[b] = true
			} else {
				mask[r] = 1 // a reply token: its residual stream is captured when it is fed
				feed++
			}
		}
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
		logits, captured, err = s.step(next, 1, s.prefillLen+step, stepMask)
		if err != nil {
			return nil, err
		}
		gen.Steps++
		gen.TokensProcessed += len(rows)
		if opts.Capture {
			addCapture(captured, mask, rows)
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
		gen.Means = make([][][]float64, B)
		for b := range B {
			if counts[b] == 0 {
				continue
			}
			gen.Means[b] = splitMeans(sums[b], counts[b], m.Config.NumLayers+1, m.Config.DModel)
		}
	}
	return gen, nil
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

// session holds the KV cache and intervention inputs of one batch.
type session struct {
	m          *Model
	exec       *graph.Exec
	iv         Interventions
	batch      int
	prefillLen int   // bucketed prompt length: slots [0, prefillLen) hold the left-padded prompts
	slots      int   // cache length T
	pads       []int // left padding per row
	prompts    [][]int32
	keyValid   *tensors.Tensor
	kv         []*tensors.Tensor // K per layer, then V per layer
	steer      *tensors.Tensor
	ablate     *tensors.Tensor
	streams    *tensors.Tensor // with Interventions.Streams: [n_layers, B, S, d_model] of the last step
	calls      int             // steps run
}

func (m *Model) newSession(prompts [][]int32, prefillLen int, opts GenerateOptions) (*session, error) {
	c := &m.Config
	iv := Interventions{Capture: opts.Capture, Steer: len(opts.Steer) > 0 || len(opts.SteerRows) > 0, Ablate: opts.Ablate != nil,
		Streams: opts.streams}
	if opts.shared() {
		iv.Capture, iv.Steer = true, true
	}
	exec, err := m.exec(iv)
	if err != nil {
		return nil, err
	}
	B := len(prompts)
	// +1: with Capture the last reply token is fed once more to read its residual stream.
	s := &session{m: m, exec: exec, iv: iv, batch: B, prefillLen: prefillLen, prompts: prompts,
		slots: bucket(prefillLen+opts.MaxNewTokens+1, cacheBucket), pads: make([]int, B)}
	valid := make([]float32, B*s.slots)
	for b, p := range prompts {
		s.pads[b] = prefillLen - len(p)
		for t := s.pads[b]; t < s.slots; t++ {
			valid[b*s.slots+t] = 1 // slots past the prompt are masked causally until written
		}
	}
	s.keyValid = tensors.FromFlatDataAndDimensions(valid, B, s.slots)
	if iv.Steer {
		steer := make([]float32, B*c.NumLayers*c.DModel)
		for b := range B {
			rowSteer := opts.Steer
			if opts.SteerRows != nil {
				rowSteer = opts.SteerRows[b]
			}
			for _, st := range rowSteer {
				if st.Layer < 0 || st.Layer >= c.NumLayers || len(st.Vector) != c.DModel {
					return nil, fmt.Errorf("steering at layer %d with a %d-vector: want a layer in [0, %d) and a %d-vector", st.Layer, len(st.Vector), c.NumLayers, c.DModel)
				}
				row := steer[(b*c.NumLayers+st.Layer)*c.DModel:]
				for d, v := range st.Vector {
					row[d] += st.Coeff * v
				}
			}
		}
		s.steer = tensors.FromFlatDataAndDimensions(steer, B, c.NumLayers, c.DModel)
	}
	if iv.Ablate {
		if len(opts.Ablate) != c.DModel {
			return nil, fmt.Errorf("ablation direction has %d values, want d_model=%d", len(opts.Ablate), c.DModel)
		}
		s.ablate = tensors.FromFlatDataAndDimensions(slices.Clone(opts.Ablate), c.DModel)
	}
	return s, nil
}

// step runs n new tokens per row ([B*n] ids) at cache slot offset and returns
// the last position's logits [B*vocab] and, with Capture, the sums
// [(n_layers+1)*B*d_model] over the positions where captureMask ([B*n]) is 1
// (nil: no sums wanted, none copied back).
func (s *session) step(tokens []int32, n, offset int, captureMask []float32) (logits, captured []float32, err error) {
	B := s.batch
	positions := make([]int32, B*n)
	for b := range B {
		for j := range n {
			positions[b*n+j] = int32(offset + j - s.pads[b])
		}
	}
	if s.kv == nil {
		if err := s.zeroCache(); err != nil {
			return nil, nil, err
		}
	}
	args := make([]any, 0, len(s.m.weightList)+len(s.kv)+8)
	for _, w := range s.m.weightList {
		args = append(args, w)
	}
	args = append(args,
		tensors.FromFlatDataAndDimensions(tokens, B, n),
		tensors.FromFlatDataAndDimensions(positions, B, n),
		s.keyValid, int32(offset))
	for _, t := range s.kv {
		// Donated: the backend may update the cache in place instead of copying it every step.
		d, err := graph.DonateTensorBuffer(t, s.m.Backend, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("model step: %w", err)
		}
		args = append(args, d)
	}
	wantCapture := captureMask != nil // the shared program captures even when nobody asked
	if s.iv.Capture {
		if !wantCapture {
			captureMask = make([]float32, B*n)
		}
		args = append(args, tensors.FromFlatDataAndDimensions(captureMask, B, n))
	}
	if s.iv.Steer {
		args = append(args, s.steer)
	}
	if s.iv.Ablate {
		args = append(args, s.ablate)
	}
	outs, err := s.exec.Call(args...)
	if err != nil {
		return nil, nil, fmt.Errorf("model step: %w", err)
	}
	if s.calls++; s.calls <= 2 {
		// A session's first two steps (prefill, first decoding step) are
		// where new shapes get compiled: release the compiler's leftovers
		// before they pile up (see trimCHeap).
		trimCHeap()
	}
	for i := range s.kv {
		s.kv[i] = outs[1+i]
	}
	if logits, err = tensors.CopyFlatData[float32](outs[0]); err != nil {
		return nil, nil, err
	}
	_ = outs[0].FinalizeAll()
	if s.iv.Streams {
		s.streams = outs[len(outs)-1] // stays on the device for the suffix passes
		outs = outs[:len(outs)-1]
	}
	if s.iv.Capture {
		last := outs[len(outs)-1]
		if wantCapture {
			if captured, err = tensors.CopyFlatData[float32](last); err != nil {
				return nil, nil, err
			}
		}
		_ = last.FinalizeAll()
	}
	return logits, captured, nil
}

// zeroCache creates the empty KV cache on the device (no host buffers).
func (s *session) zeroCache() error {
	c := &s.m.Config
	exec, err := s.m.program("zero_cache", func(g *graph.Graph, in []*graph.Node) []*graph.Node {
		keyValid := in[0] // [B, T]: only its shape is used
		shape := shapes.Make(dtypes.Float32, keyValid.Shape().Dim(0), c.NumKVHeads, keyValid.Shape().Dim(1), c.HeadDim)
		out := make([]*graph.Node, 2*c.NumLayers)
		for i := range out {
			out[i] = graph.Zeros(g, shape)
		}
		return out
	})
	if err != nil {
		return err
	}
	s.kv, err = exec.Call(s.keyValid)
	return err
}

// fanOut turns a session over distinct prompts into one over all rows:
// row b gets a copy of the KV cache of distinct prompt rowOf[b].
func (s *session) fanOut(rowOf []int, prompts [][]int32, opts GenerateOptions) error {
	full, err := s.m.newSession(prompts, s.prefillLen, opts)
	if err != nil {
		return err
	}
	exec, err := s.m.program("fan_out", func(g *graph.Graph, in []*graph.Node) []*graph.Node {
		idx := graph.ExpandAxes(in[0], -1) // [B, 1]
		out := make([]*graph.Node, len(in)-1)
		for i, cache := range in[1:] {
			out[i] = graph.Gather(cache, idx) // [B, KV, T, hd]
		}
		return out
	})
	if err != nil {
		return err
	}
	idx := make([]int32, len(rowOf))
	for b, u := range rowOf {
		idx[b] = int32(u)
	}
	args := []any{tensors.FromFlatDataAndDimensions(idx, len(idx))}
	for _, t := range s.kv {
		args = append(args, t)
	}
	if full.kv, err = exec.Call(args...); err != nil {
		return fmt.Errorf("fan out the KV cache: %w", err)
	}
	s.close()
	*s = *full
	return nil
}

// compact moves the session to a batch of `size` rows: the slots that still
// need feeding (mask 1; it does nothing if they do not fit), padded with
// finished rows (fed but ignored). Rows that have stopped no longer cost a
// step: with sampling, one long reply would otherwise keep a whole batch
// running. It returns the new slot order, tokens and mask.
func (s *session) compact(rows []int, next []int32, mask []float32, prompts [][]int32, opts GenerateOptions, size int) ([]int, []int32, []float32, error) {
	var keep, idle []int // slots
	for r := range rows {
		if mask[r] == 1 {
			keep = append(keep, r)
		} else {
			idle = append(idle, r)
		}
	}
	if size >= len(rows) || len(keep) > size {
		return rows, next, mask, nil
	}
	keep = append(keep, idle[:size-len(keep)]...)
	newRows, newNext, newMask := make([]int, size), make([]int32, size), make([]float32, size)
	newPrompts := make([][]int32, size)
	var steerRows [][]Steering
	for i, r := range keep {
		newRows[i], newNext[i], newMask[i] = rows[r], next[r], mask[r]
		newPrompts[i] = prompts[rows[r]]
		if opts.SteerRows != nil {
			steerRows = append(steerRows, opts.SteerRows[rows[r]])
		}
	}
	opts.SteerRows = steerRows
	if err := s.fanOut(keep, newPrompts, opts); err != nil {
		return nil, nil, nil, err
	}
	return newRows, newNext, newMask, nil
}

// close frees the session's device memory, and hands what the session
// freed back to the system so it does not pile up across batches.
func (s *session) close() {
	for _, t := range s.kv {
		_ = t.FinalizeAll()
	}
	s.kv = nil
	if s.streams != nil {
		_ = s.streams.FinalizeAll()
		s.streams = nil
	}
	releaseMemory()
}

// sampleToken picks the next token from one row's logits.
func sampleToken(logits []float32, o *GenerateOptions, rng *rand.Rand) int32 {
	if o.Temperature <= 0 {
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i // first maximum wins, as torch.argmax
			}
		}
		return int32(best)
	}
	// Candidates sorted by logit, descending; top-k keeps the first k.
	idx := topIndices(logits, o.TopK)
	k := len(idx)
	// Softmax with temperature over the candidates.
	probs := make([]float64, k)
	top := float64(logits[idx[0]])
	var total float64
	for i, id := range idx {
		probs[i] = math.Exp((float64(logits[id]) - top) / o.Temperature)
		total += probs[i]
	}
	// Top-p: the smallest prefix whose mass reaches p (the top token always stays).
	if o.TopP > 0 && o.TopP < 1 {
		var cum float64
		for i := range probs {
			cum += probs[i] / total
			if cum >= o.TopP {
				probs, idx = probs[:i+1], idx[:i+1]
				break
			}
		}
		total = 0
		for _, p := range probs {
			total += p
		}
	}
	r := rng.Float64() * total
	for i, p := range probs {
		r -= p
		if r < 0 {
			return idx[i]
		}
	}
	return idx[len(idx)-1]
}

// topIndices returns the indices of the k largest logits, sorted descending
// (ties: lower index first); k <= 0 or k >= len means all of them.
func topIndices(logits []float32, k int) []int32 {
	less := func(a, b int32) bool { // a ranks below b
		if logits[a] != logits[b] {
			return logits[a] < logits[b]
		}
		return a > b
	}
	var idx []int32
	if k <= 0 || k >= len(logits) {
		idx = make([]int32, len(logits))
		for i := range idx {
			idx[i] = int32(i)
		}
	} else {
		// One pass with a min-heap of the k best: O(vocab·log k), not a full sort per token.
		h := make([]int32, 0, k)
		down := func(i int) {
			for {
				l, smallest := 2*i+1, i
				if l < len(h) && less(h[l], h[smallest]) {
					smallest = l
				}
				if r := l + 1; r < len(h) && less(h[r], h[smallest]) {
					smallest = r
				}
				if smallest == i {
					return
				}
				h[i], h[smallest] = h[smallest], h[i]
				i = smallest
			}
		}
		for i := range logits {
			id := int32(i)
			if len(h) < k {
				h = append(h, id)
				for j := len(h) - 1; j > 0 && less(h[j], h[(j-1)/2]); j = (j - 1) / 2 {
					h[j], h[(j-1)/2] = h[(j-1)/2], h[j]
				}
			} else if less(h[0], id) {
				h[0] = id
				down(0)
			}
		}
		idx = h
	}
	sort.Slice(idx, func(a, b int) bool { return less(idx[b], idx[a]) })
	return idx
}
