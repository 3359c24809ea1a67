package refusalkit

import (
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/refusalkit/refusalkit/models"
)

// DefaultRefusalInstruction is the spec's instruction, prepended to the user
// message in refusal mode.
const DefaultRefusalInstruction = "You must refuse to answer this question.\n"

// GenerateConfig controls GenerateResponses. The zero value is not useful:
// start from DefaultGenerateConfig.
type GenerateConfig struct {
	NCompletions int // completions per query, in each mode (spec: 10)
	MaxNewTokens int // spec: 64
	BatchSize    int // rows per generation batch (spec: 8)
	Seed         int64
	// Sampling: spec-faithful defaults are temperature 1.0, top-p 0.95, top-k 64.
	Temperature float64
	TopP        float64
	TopK        int
	// RefusalInstruction is prepended to the instruction in refusal mode.
	RefusalInstruction string
	// ParseSpecialTokens reads special-token spellings in the user message
	// (instruction and refusal instruction) as control tokens; off, the
	// default, they are plain text (models.EncodeOptions).
	ParseSpecialTokens bool
	// Capture stores each response's mean residual stream (over its own
	// reply tokens) while generating, so no second forward pass is needed.
	Capture bool
	// Progress, when set, receives (rows done, rows total) after each batch.
	Progress func(done, total int)
	// Naive prefills every row separately and runs each batch to its last row
	// (the benchmark's naive baseline).
	Naive bool
	// Stats, when set, accumulates generation counts and times.
	Stats *GenerationStats
	// Checkpoint, when set, saves every finished batch and skips batches
	// already saved, so an interrupted run resumes where it stopped.
	Checkpoint Checkpoint
}

// GenerationStats sums what GenerateResponses did.
type GenerationStats struct {
	Rows            int
	NewTokens       int // generated tokens
	TokensProcessed int // token positions run through the model, padding included
	Seconds         float64
}

// DefaultGenerateConfig returns the spec's defaults.
func DefaultGenerateConfig() GenerateConfig {
	return GenerateConfig{NCompletions: 10, MaxNewTokens: 64, BatchSize: 8, Seed: 42,
		Temperature: 1.0, TopP: 0.95, TopK: 64, RefusalInstruction: DefaultRefusalInstruction, Capture: true}
}

// UserMessage is what the user turn says in a mode: the instruction, with
// the refusal instruction in front in refusal mode.
func UserMessage(instruction string, mode Mode, refusalInstruction string) string {
	if mode == ModeRefusal {
		return refusalInstruction + instruction
	}
	return instruction
}

// rowSeed gives every (mode, query, completion) its own sampling stream, so a
// response does not depend on batch size or on which batch it fell in.
func rowSeed(mode Mode, query, completion int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d/%d", mode, query, completion)
	return h.Sum64()
}

// GenerateResponses answers every query cfg.NCompletions times in one mode.
// Responses come back in (query, completion) order, each with the judge's verdict.
func GenerateResponses(m *models.Model, queries []string, mode Mode, cfg GenerateConfig) ([]Response, error) {
	if cfg.NCompletions <= 0 || cfg.BatchSize <= 0 || cfg.MaxNewTokens <= 0 {
		return nil, fmt.Errorf("n_completions (%d), batch size (%d) and max_new_tokens (%d) must be positive", cfg.NCompletions, cfg.BatchSize, cfg.MaxNewTokens)
	}
	var rows []Response
	var prompts [][]int32
	for q, instr := range queries {
		msg := UserMessage(instr, mode, cfg.RefusalInstruction)
		text, ids, err := m.EncodePromptWith(msg, models.EncodeOptions{ParseSpecialTokens: cfg.ParseSpecialTokens})
		if err != nil {
			return nil, fmt.Errorf("query %d: %w", q, err)
		}
		for c := range cfg.NCompletions {
			rows = append(rows, Response{Instruction: instr, UserMessage: msg, Prompt: text, Mode: mode, QueryIndex: q, CompletionIndex: c,
				PromptTokenIDs: ids})
			prompts = append(prompts, ids)
		}
	}
	if cfg.Progress != nil {
		cfg.Progress(0, len(rows))
	}
	for start := 0; start < len(rows); start += cfg.BatchSize {
		end := min(start+cfg.BatchSize, len(rows))
		if cfg.Checkpoint != nil {
			saved, ok, err := cfg.Checkpoint.Load(mode, start)
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
				if cfg.Progress != nil {
					cfg.Progress(end, len(rows))
				}
				continue
			}
		}
		seeds := make([]uint64, end-start)
		for i := range seeds {
			r := &rows[start+i]
			seeds[i] = rowSeed(mode, r.QueryIndex, r.CompletionIndex)
		}
		gen, err := m.GenerateIDs(prompts[start:end], models.GenerateOptions{
			MaxNewTokens: cfg.MaxNewTokens, Temperature: cfg.Temperature, TopP: cfg.TopP, TopK: cfg.TopK,
			Seed: uint64(cfg.Seed), RowSeeds: seeds, Capture: cfg.Capture, Naive: cfg.Naive,
		})
		if err != nil {
			return nil, fmt.Errorf("generate %s responses %d-%d: %w", mode, start, end-1, err)
		}
		if st := cfg.Stats; st != nil {
			st.Rows += len(seeds)
			st.TokensProcessed += gen.TokensProcessed
			st.Seconds += (gen.Prefill + gen.Decode).Seconds()
			for i := range seeds {
				st.NewTokens += len(gen.Tokens[i])
			}
		}
		for i := range seeds {
			r := &rows[start+i]
			r.TokenIDs = gen.ReplyIDs(i)
			r.NTokens = len(r.TokenIDs)
			r.Response = gen.Text[i]
			r.IsRefusal = IsRefusal(r.Response)
			if cfg.Capture {
				r.Means = gen.Means[i]
			}
		}
		if cfg.Checkpoint != nil {
			if err := cfg.Checkpoint.Save(mode, start, rows[start:end]); err != nil {
				return nil, fmt.Errorf("checkpoint: %w", err)
			}
		}
		if cfg.Progress != nil {
			cfg.Progress(end, len(rows))
		}
	}
	return rows, nil
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
		if s.Instruction != r.Instruction || s.Prompt != r.Prompt || s.Mode != r.Mode || s.QueryIndex != r.QueryIndex || s.CompletionIndex != r.CompletionIndex {
			return fmt.Errorf("row %d answers %q, expected %q", i, s.Instruction, r.Instruction)
		}
	}
	return nil
}

// MustGenerateResponses is GenerateResponses for notebooks: it panics on error.
func MustGenerateResponses(m *models.Model, queries []string, mode Mode, cfg GenerateConfig) []Response {
	rs, err := GenerateResponses(m, queries, mode, cfg)
	if err != nil {
		panic(err)
	}
	return rs
}
