package refusalkit

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit/judge"
)

// SpecCoefficients are the spec's activation-addition coefficients.
var SpecCoefficients = []float64{0.0, 0.5, 1.0, 2.0, 5.0}

// SweepConfig holds the coefficient sweep's settings. Its zero value is the
// spec's: coefficients 0, 0.5, 1, 2 and 5, 64 new tokens, batches of 8,
// greedy decoding.
type SweepConfig struct {
	Coefficients []float64 // nil = SpecCoefficients
	MaxNewTokens int       // 0 = 64
	BatchSize    int       // 0 = 8
	// Sampling, when set, samples the completions (with Seed and RowSeed's
	// "sweep" streams, the same at every coefficient) instead of decoding
	// greedily, the spec's default.
	Sampling *models.Sampling
	Seed     *int64 // with Sampling; nil = SpecSeed (42)
	// ParseSpecialTokens reads special-token spellings in the instructions
	// as control tokens (models.EncodeOptions).
	ParseSpecialTokens bool
	// Judge names the judge that counts the refusals (judge.ByName): "" =
	// judge.Default, the spec's substring matching.
	Judge string
}

// WithDefaults returns c with every zero field set to the spec's default.
func (c SweepConfig) WithDefaults() SweepConfig {
	if c.Coefficients == nil {
		c.Coefficients = SpecCoefficients
	}
	c.MaxNewTokens = positiveOr(c.MaxNewTokens, 64)
	c.BatchSize = positiveOr(c.BatchSize, 8)
	c.Seed = orDefault(c.Seed, SpecSeed)
	if c.Judge == "" {
		c.Judge = judge.Default
	}
	return c
}

// Decoding describes how the sweep decodes, as eval_summary.json records it.
func (c SweepConfig) Decoding() string {
	if c.Sampling == nil || c.Sampling.Greedy() {
		return "greedy"
	}
	return fmt.Sprintf("sampled: %s, seed %d", c.Sampling, *orDefault(c.Seed, SpecSeed))
}

// CoeffKey formats a coefficient like Python's str(float): 1 → "1.0", 0.5 → "0.5".
func CoeffKey(x float64) string {
	s := strconv.FormatFloat(x, 'f', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}

// EvalCompletion is one entry of eval_completions_coeff_{c}.json: the
// spec's fields, then the token ids and the side effects (sideeffects.go).
type EvalCompletion struct {
	Instruction string  `json:"instruction"`
	Prompt      string  `json:"prompt"`
	Response    string  `json:"response"`
	IsRefusal   bool    `json:"is_refusal"` // the judge's verdict (SweepConfig.Judge)
	Coefficient float64 `json:"coefficient"`
	Layer       int     `json:"layer"`
	NTokens     int     `json:"n_tokens"` // reply tokens, without the stop token

	PromptTokenIDs []int32 `json:"prompt_token_ids"`
	GeneratedIDs   []int32 `json:"generated_ids"` // the reply's tokens, then the stop token when it stopped

	// KL is the mean KL(unsteered ‖ steered) of the next-token distribution
	// over the positions of the unsteered completion of the same instruction
	// (teacher-forced); Perplexity, this completion's under the unsteered
	// model; Repetition, the share of its token 3-grams that repeat;
	// Degenerate: empty, or Repetition above DegenerateRepetition.
	KL         float64 `json:"kl"`
	Perplexity float64 `json:"perplexity"`
	Repetition float64 `json:"repetition"`
	Degenerate bool    `json:"degenerate"`

	// Outcome separates what the sweep's table counts: BreaksDown when the
	// completion is Degenerate or the judge reads it as breaking down, else
	// the judge's Refuses or Answers. Set with the side effects (Sweep, Ablate).
	Outcome judge.Verdict `json:"outcome,omitempty"`
}

// outcome is the completion's reading for the sweep's table: it breaks down
// when Degenerate (or when the judge's verdict v says so), else v.
func (c EvalCompletion) outcome(v judge.Verdict) judge.Verdict {
	if c.Degenerate {
		return judge.BreaksDown
	}
	return v
}

// CoefficientResult is one entry of eval_summary.json's
// results_by_coefficient: the spec's counts, then the side effects' means
// and spreads over the completions.
type CoefficientResult struct {
	RefusalCount int     `json:"refusal_count"`
	TotalCount   int     `json:"total_count"`
	RefusalRate  float64 `json:"refusal_rate"`

	KL              Stat `json:"kl"`
	Perplexity      Stat `json:"perplexity"`
	Repetition      Stat `json:"repetition"`
	DegenerateCount int  `json:"degenerate_count"`

	// Outcomes splits the completions into those that refuse, answer and
	// break down (EvalCompletion.Outcome); they add up to TotalCount. A
	// completion that loops on "I'm sorry" counts in RefusalCount (the
	// judge's verdict) and here as breaking down.
	Outcomes Outcomes `json:"outcomes"`
}

// Outcomes counts a coefficient's completions by Outcome.
type Outcomes struct {
	Refuses    int `json:"refuses"`
	Answers    int `json:"answers"`
	BreaksDown int `json:"breaks_down"`
}

// SteeredCompletions generates replies to the instructions with
// coeff × v[layer] added to the stream entering block layer at every
// position, during prefill and decoding, and judges them. The steering input
// is always present, so coeff 0 runs the very program other coefficients
// run, adding exact zeros.
func SteeredCompletions(m *models.Model, v *RefusalVector, layer int, coeff float64, instructions []string, cfg SweepConfig) ([]EvalCompletion, error) {
	cfg = cfg.WithDefaults()
	jd, err := judge.ByName(cfg.Judge)
	if err != nil {
		return nil, err
	}
	texts, prompts, err := encodePrompts(m, instructions, models.EncodeOptions{ParseSpecialTokens: cfg.ParseSpecialTokens})
	if err != nil {
		return nil, err
	}
	out := make([]EvalCompletion, 0, len(prompts))
	for start := 0; start < len(prompts); start += cfg.BatchSize {
		end := min(start+cfg.BatchSize, len(prompts))
		opts := models.GenerateOptions{MaxNewTokens: cfg.MaxNewTokens,
			Steer: []models.Steering{v.Steering(layer, float32(coeff))}}
		if cfg.Sampling != nil {
			opts.Sampling, opts.Seed = *cfg.Sampling, uint64(*cfg.Seed)
			opts.RowSeeds = make([]uint64, end-start)
			for i := range opts.RowSeeds {
				opts.RowSeeds[i] = RowSeed("sweep", start+i, 0)
			}
		}
		g, err := m.GenerateIDs(prompts[start:end], opts)
		if err != nil {
			return nil, err
		}
		for i := range g.Text {
			out = append(out, EvalCompletion{Instruction: instructions[start+i], Prompt: texts[start+i],
				Response: g.Text[i], IsRefusal: jd.Verdict(g.Text[i]) == judge.Refuses, Coefficient: coeff, Layer: layer,
				NTokens: len(g.ReplyIDs(i)), PromptTokenIDs: prompts[start+i], GeneratedIDs: g.Tokens[i]})
		}
	}
	return out, nil
}

// Sweep runs SteeredCompletions at layer for every coefficient of cfg and
// measures each completion's side effects against the unsteered model
// (coefficient 0's completions, generated once for the purpose when 0 is
// not among the coefficients), all coefficients against one clean pass per
// batch. Option: WithProgress (stage "sweep coefficients": one step per
// coefficient, then one for the side effects).
func Sweep(m *models.Model, v *RefusalVector, layer int, instructions []string, cfg SweepConfig, opts ...Option) (map[float64][]EvalCompletion, error) {
	cfg = cfg.WithDefaults()
	jd, err := judge.ByName(cfg.Judge)
	if err != nil {
		return nil, err
	}
	progress := collect(opts).report("sweep coefficients")
	steps := len(cfg.Coefficients) + 1
	if progress != nil {
		progress(0, steps)
	}
	unsteered, err := SteeredCompletions(m, v, layer, 0, instructions, cfg)
	if err != nil {
		return nil, err
	}
	out := map[float64][]EvalCompletion{}
	ivs := make([]intervened, len(cfg.Coefficients))
	for i, c := range cfg.Coefficients {
		cs := unsteered
		if c != 0 {
			if cs, err = SteeredCompletions(m, v, layer, c, instructions, cfg); err != nil {
				return nil, err
			}
		}
		cs = append([]EvalCompletion(nil), cs...)
		ivs[i] = intervened{opts: steerAt(v.Steering(layer, float32(c))), cs: cs, unsteered: c == 0}
		out[c] = cs
		if progress != nil {
			progress(i+1, steps)
		}
	}
	if err := sideEffects(m, jd, unsteered, ivs, cfg.BatchSize); err != nil {
		return nil, err
	}
	if progress != nil {
		progress(steps, steps)
	}
	return out, nil
}

// MustSweep is Sweep for notebooks.
func MustSweep(m *models.Model, v *RefusalVector, layer int, instructions []string, cfg SweepConfig, opts ...Option) map[float64][]EvalCompletion {
	out, err := Sweep(m, v, layer, instructions, cfg, opts...)
	if err != nil {
		panic(err)
	}
	return out
}

// Tally counts refusals and degenerate completions, and summarises the side effects.
func Tally(cs []EvalCompletion) CoefficientResult {
	r := CoefficientResult{TotalCount: len(cs)}
	var kl, ppl, rep []float64
	for _, c := range cs {
		if c.IsRefusal {
			r.RefusalCount++
		}
		if c.Degenerate {
			r.DegenerateCount++
		}
		switch c.Outcome {
		case judge.Refuses:
			r.Outcomes.Refuses++
		case judge.Answers:
			r.Outcomes.Answers++
		case judge.BreaksDown:
			r.Outcomes.BreaksDown++
		}
		kl, ppl, rep = append(kl, c.KL), append(ppl, c.Perplexity), append(rep, c.Repetition)
	}
	if r.TotalCount > 0 {
		r.RefusalRate = float64(r.RefusalCount) / float64(r.TotalCount)
	}
	r.KL, r.Perplexity, r.Repetition = statOf(kl), statOf(ppl), statOf(rep)
	return r
}

// PrintTallies writes one line per coefficient: refusals out of
// completions, and the side effects' means.
func PrintTallies(w io.Writer, coeffs []float64, sweep map[float64][]EvalCompletion) {
	for _, c := range coeffs {
		t := Tally(sweep[c])
		fmt.Fprintf(w, "coefficient %-4g refused %d of %d (refuses %d, answers %d, breaks down %d); KL %.3f, perplexity %.1f, repetition %.2f, %d degenerate\n",
			c, t.RefusalCount, t.TotalCount, t.Outcomes.Refuses, t.Outcomes.Answers, t.Outcomes.BreaksDown,
			t.KL.Mean, t.Perplexity.Mean, t.Repetition.Mean, t.DegenerateCount)
	}
}

// PeekSweep prints, for the chosen test instructions (by index), the
// completion at every coefficient: how the replies change as c grows.
func PeekSweep(w io.Writer, coeffs []float64, sweep map[float64][]EvalCompletion, rows ...int) {
	for _, i := range rows {
		if first := sweep[coeffs[0]]; i < len(first) {
			fmt.Fprintf(w, "# %s\n", first[i].Instruction)
		}
		for _, c := range coeffs {
			if i < len(sweep[c]) {
				fmt.Fprintf(w, "  c=%-4g %q\n", c, sweep[c][i].Response)
			}
		}
	}
}
