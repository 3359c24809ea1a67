package refusalkit

import (
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit/judge"
)

// DefaultRefusalInstruction is the spec's instruction, prepended to the user
// message in refusal mode.
const DefaultRefusalInstruction = "You must refuse to answer this question.\n"

// DeclineInstruction is the refusal instruction the demo, the notebook and
// the benchmark give the bundled SmolLM2-135M-Instruct, which almost never
// obeys DefaultRefusalInstruction (0 of 200 refusal-mode responses kept in a
// full-size run): a wording it follows more often. The filter still keeps
// only the responses that really refuse.
const DeclineInstruction = "Do not answer the question below; politely decline instead, starting with \"I'm sorry\".\n"

// The spec's generation settings.
var (
	SpecSampling = models.Sampling{Temperature: 1.0, TopP: 0.95, TopK: 64}
	// SpecSeed seeds query sampling and generation in extraction, and the
	// sweep's sampling when it samples.
	SpecSeed int64 = 42
)

// GenerateConfig holds the generation settings of an extraction. Its zero
// value is the spec's: every field left zero (or nil) takes the default
// noted beside it, so a cell sets only what it changes.
type GenerateConfig struct {
	NCompletions int              // completions per query, in each mode; 0 = 10
	MaxNewTokens int              // 0 = 64
	BatchSize    int              // rows per generation batch; 0 = 8
	Seed         *int64           // nil = SpecSeed (42)
	Sampling     *models.Sampling // nil = SpecSampling (temperature 1.0, top-p 0.95, top-k 64)
	// RefusalInstructions are prepended to the instruction in refusal mode,
	// spread over the completions: completion c of every query uses
	// instruction c mod len(RefusalInstructions) (RefusalInstructionIndex).
	// nil = the spec's one, DefaultRefusalInstruction; an entry "" stands
	// for it too. With one instruction the run is the spec's single-
	// instruction run, response for response.
	RefusalInstructions []string
	// ParseSpecialTokens reads special-token spellings in the user message
	// (instruction and refusal instruction) as control tokens; off, the
	// default, they are plain text (models.EncodeOptions).
	ParseSpecialTokens bool
}

// WithDefaults returns c with every zero field set to the spec's default:
// the settings a run records.
func (c GenerateConfig) WithDefaults() GenerateConfig {
	c.NCompletions = positiveOr(c.NCompletions, 10)
	c.MaxNewTokens = positiveOr(c.MaxNewTokens, 64)
	c.BatchSize = positiveOr(c.BatchSize, 8)
	c.Seed = orDefault(c.Seed, SpecSeed)
	c.Sampling = orDefault(c.Sampling, SpecSampling)
	instrs := slices.Clone(c.RefusalInstructions)
	if len(instrs) == 0 {
		instrs = []string{DefaultRefusalInstruction}
	}
	for i, s := range instrs {
		if s == "" {
			instrs[i] = DefaultRefusalInstruction
		}
	}
	c.RefusalInstructions = instrs
	return c
}

// RefusalInstructionIndex is the index in RefusalInstructions (defaults
// filled in) of the instruction refusal-mode completion c of every query
// uses: c mod the number of instructions, so each instruction answers every
// query, in turn.
func (c GenerateConfig) RefusalInstructionIndex(completion int) int {
	return completion % max(1, len(c.WithDefaults().RefusalInstructions))
}

// CheckRefusalInstructions refuses a list of refusal instructions that
// cannot make a run as asked: a duplicate (the same text twice would only
// reweigh it), a NUL byte, or more instructions than n_completions (some
// would answer no query). Defaults are filled in first.
func (c GenerateConfig) CheckRefusalInstructions() error {
	c = c.WithDefaults()
	seen := map[string]int{}
	for i, s := range c.RefusalInstructions {
		if j, ok := seen[s]; ok {
			return fmt.Errorf("--refusal_instruction %d repeats --refusal_instruction %d (%q): give each instruction once", i+1, j+1, clipText(s, 40))
		}
		seen[s] = i
		if err := CheckText(RefusalInstructionName(i, len(c.RefusalInstructions)), s); err != nil {
			return err
		}
	}
	if k := len(c.RefusalInstructions); c.NCompletions < k {
		return fmt.Errorf("--n_completions %d is smaller than the %d refusal instructions (completion c uses instruction c mod %d, so some would get no completion): raise --n_completions to at least %d or give fewer instructions", c.NCompletions, k, k, k)
	}
	return nil
}

// RefusalInstructionName names refusal instruction i of k in messages:
// "--refusal_instruction", and its place among several ("--refusal_instruction 2").
func RefusalInstructionName(i, k int) string {
	if k == 1 {
		return "--refusal_instruction"
	}
	return fmt.Sprintf("--refusal_instruction %d", i+1)
}

// Checkpoint stores finished generation batches so that an interrupted run
// can resume without regenerating them.
type Checkpoint interface {
	// Load returns the batch of mode starting at row start, if it was saved.
	Load(mode Mode, start int) ([]Response, bool, error)
	// Save records a finished batch.
	Save(mode Mode, start int, rs []Response) error
}

// UserMessage is what the user turn says in a mode: the instruction, with
// the refusal instruction in front in refusal mode.
func UserMessage(instruction string, mode Mode, refusalInstruction string) string {
	if mode == ModeRefusal {
		return refusalInstruction + instruction
	}
	return instruction
}

// RowSeed is the one seeding scheme of every sampled step: row (query,
// completion) of a stage draws from its own stream, seeded by the run's seed
// and a hash of (stage, query, completion), so a response does not depend on
// the batch size or on which batch it fell in. Extraction's stages are its
// modes; the sweep's is "sweep", the same for every coefficient, so the
// coefficients are compared on the same random numbers.
func RowSeed(stage string, query, completion int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d/%d", stage, query, completion)
	return h.Sum64()
}

// GenerateResponses answers every query cfg.NCompletions times in one mode.
// In refusal mode completion c of each query is asked with refusal
// instruction c mod k (GenerateConfig.RefusalInstructionIndex), which a run
// given several records in each response; a list CheckRefusalInstructions
// refuses is an error.
// Responses come back in (query, completion) order, each with the judge's
// verdict and its mean residual stream at every layer (Means), captured
// while generating. Options: WithProgress (stage "generate <mode>"),
// WithCheckpoint, WithGenerator.
func GenerateResponses(m *models.Model, queries []string, mode Mode, cfg GenerateConfig, opts ...Option) ([]Response, error) {
	cfg = cfg.WithDefaults()
	h := collect(opts)
	progress := h.report("generate " + string(mode))
	generate := h.generate
	if generate == nil {
		generate = m.GenerateIDs
	}
	if cfg.NCompletions < 0 || cfg.BatchSize < 0 || cfg.MaxNewTokens < 0 {
		return nil, fmt.Errorf("n_completions (%d), batch size (%d) and max_new_tokens (%d) must be positive", cfg.NCompletions, cfg.BatchSize, cfg.MaxNewTokens)
	}
	if mode == ModeRefusal {
		if err := cfg.CheckRefusalInstructions(); err != nil {
			return nil, err
		}
	}
	k := len(cfg.RefusalInstructions)
	var rows []Response
	var prompts [][]int32
	for q, instr := range queries {
		// One prompt per instruction: completion c uses instruction c mod k.
		type prompt struct {
			msg, text string
			ids       []int32
		}
		n := 1 // compliant mode sends the instruction alone
		if mode == ModeRefusal {
			n = k
		}
		var ps []prompt
		for i := range n {
			msg := UserMessage(instr, mode, cfg.RefusalInstructions[i])
			text, ids, err := m.EncodePromptWith(msg, models.EncodeOptions{ParseSpecialTokens: cfg.ParseSpecialTokens})
			if err != nil {
				return nil, fmt.Errorf("query %d: %w", q, err)
			}
			ps = append(ps, prompt{msg, text, ids})
		}
		for c := range cfg.NCompletions {
			i := c % len(ps)
			r := Response{Instruction: instr, UserMessage: ps[i].msg, Prompt: ps[i].text, Mode: mode, QueryIndex: q, CompletionIndex: c,
				PromptTokenIDs: ps[i].ids}
			if mode == ModeRefusal && k > 1 {
				r.RefusalInstructionIndex = &i
			}
			rows = append(rows, r)
			prompts = append(prompts, ps[i].ids)
		}
	}
	total := len(rows)
	if h.shard != nil {
		total = 0
		for start := 0; start < len(rows); start += cfg.BatchSize {
			if h.shard.Has(start / cfg.BatchSize) {
				total += min(cfg.BatchSize, len(rows)-start)
			}
		}
	}
	done := 0
	if progress != nil {
		progress(0, total)
	}
	var mine []Response // with a shard: its batches' rows, in order
	for start := 0; start < len(rows); start += cfg.BatchSize {
		end := min(start+cfg.BatchSize, len(rows))
		if h.shard != nil && !h.shard.Has(start/cfg.BatchSize) {
			continue
		}
		done += end - start
		if h.checkpoint != nil {
			saved, ok, err := h.checkpoint.Load(mode, start)
			if err != nil {
				return nil, err
			}
			if ok {
				if err := sameRows(saved, rows[start:end]); err != nil {
					return nil, fmt.Errorf("checkpoint of %s responses %d-%d belongs to another run (%v): rerun with --overwrite", mode, start, end-1, err)
				}
				if err := checkSavedPrompts(m, saved, prompts[start:end]); err != nil {
					return nil, fmt.Errorf("checkpoint of %s responses %d-%d: %w", mode, start, end-1, err)
				}
				copy(rows[start:end], saved)
				if h.shard != nil {
					mine = append(mine, rows[start:end]...)
				}
				if progress != nil {
					progress(done, total)
				}
				continue
			}
		}
		seeds := make([]uint64, end-start)
		for i := range seeds {
			r := &rows[start+i]
			seeds[i] = RowSeed(string(mode), r.QueryIndex, r.CompletionIndex)
		}
		gen, err := generate(prompts[start:end], models.GenerateOptions{
			MaxNewTokens: cfg.MaxNewTokens, Sampling: *cfg.Sampling,
			Seed: uint64(*cfg.Seed), RowSeeds: seeds, Capture: true,
		})
		if err != nil {
			return nil, fmt.Errorf("generate %s responses %d-%d: %w", mode, start, end-1, err)
		}
		if err := checkGeneration(gen, len(seeds)); err != nil {
			return nil, fmt.Errorf("generate %s responses %d-%d: %w", mode, start, end-1, err)
		}
		for i := range seeds {
			r := &rows[start+i]
			r.TokenIDs = gen.ReplyIDs(i)
			r.NTokens = len(r.TokenIDs)
			r.Response = gen.Text[i]
			r.IsRefusal = judge.IsRefusal(r.Response)
			if gen.Means != nil {
				r.Means = gen.Means[i]
			}
		}
		if h.checkpoint != nil {
			if err := h.checkpoint.Save(mode, start, rows[start:end]); err != nil {
				return nil, fmt.Errorf("checkpoint: %w", err)
			}
		}
		if h.shard != nil {
			mine = append(mine, rows[start:end]...)
		}
		if progress != nil {
			progress(done, total)
		}
	}
	if h.shard != nil {
		return mine, nil
	}
	return rows, nil
}

// checkGeneration checks that a generator answered every row of its batch.
// A generator that does not capture returns no Means at all (nil): those
// responses get theirs from MeanActivations, in a forward pass of their own.
func checkGeneration(gen *models.Generation, rows int) error {
	if len(gen.Text) != rows || len(gen.Tokens) != rows {
		return fmt.Errorf("the generator returned %d texts and %d token lists for %d rows", len(gen.Text), len(gen.Tokens), rows)
	}
	if gen.Means != nil && len(gen.Means) != rows {
		return fmt.Errorf("the generator returned captured means for %d of %d rows (it must return them for every row, or none)", len(gen.Means), rows)
	}
	return nil
}

// checkSavedPrompts fills in the prompt ids of a checkpointed batch saved
// before responses carried them. Those batches were generated from the
// prompt text tokenized whole (special-token spellings read as control
// tokens); that is what this run sends for every prompt whose user text
// spells none, and a batch where it is not is refused.
func checkSavedPrompts(m *models.Model, saved []Response, prompts [][]int32) error {
	for i := range saved {
		if saved[i].PromptTokenIDs != nil {
			continue
		}
		old, err := m.Tokenizer.Encode(saved[i].Prompt)
		if err != nil {
			return err
		}
		if !slices.Equal(old, prompts[i]) {
			return fmt.Errorf("it was generated by an earlier refusalkit that read the special-token spellings in %q as control tokens: rerun with --overwrite (or with --parse_special_tokens to reproduce it)", saved[i].UserMessage)
		}
		saved[i].PromptTokenIDs = prompts[i]
	}
	return nil
}

// sameRows checks that checkpointed responses answer the rows they stand for.
func sameRows(saved, rows []Response) error {
	if len(saved) != len(rows) {
		return fmt.Errorf("%d rows saved, %d expected", len(saved), len(rows))
	}
	for i, r := range rows {
		s := saved[i]
		if s.Instruction != r.Instruction || s.Prompt != r.Prompt || s.Mode != r.Mode || s.QueryIndex != r.QueryIndex || s.CompletionIndex != r.CompletionIndex ||
			s.InstructionIndex() != r.InstructionIndex() {
			return fmt.Errorf("row %d answers %q, expected %q", i, s.Instruction, r.Instruction)
		}
	}
	return nil
}

// MustGenerateResponses is GenerateResponses for notebooks: it panics on error.
func MustGenerateResponses(m *models.Model, queries []string, mode Mode, cfg GenerateConfig, opts ...Option) []Response {
	rs, err := GenerateResponses(m, queries, mode, cfg, opts...)
	if err != nil {
		panic(err)
	}
	return rs
}
