package refusalkit

import (
	"math"
	"strings"

	"github.com/refusalkit/refusalkit/models"
)

// Side effects of steering, measured on every completion of the sweep
// against the unsteered model (Arditi et al. 2024 filter directions by the
// KL they cause on harmless prompts; these put that next to the refusal rate).

// DegenerateRepetition is the repetition above which a completion counts as
// degenerate: more than half of its token 3-grams repeat an earlier one.
const DegenerateRepetition = 0.5

// Repetition is the share of a token sequence's 3-grams that repeat an
// earlier 3-gram of it: 0 for no repeat (or fewer than 3 tokens), near 1
// for a loop.
func Repetition(ids []int32) float64 {
	n := len(ids) - 2
	if n <= 0 {
		return 0
	}
	seen := map[[3]int32]bool{}
	repeats := 0
	for i := range n {
		k := [3]int32{ids[i], ids[i+1], ids[i+2]}
		if seen[k] {
			repeats++
		}
		seen[k] = true
	}
	return float64(repeats) / float64(n)
}

// IsDegenerate reports a completion with no text but whitespace, or one
// whose repetition exceeds DegenerateRepetition.
func IsDegenerate(text string, ids []int32) bool {
	return strings.TrimSpace(text) == "" || Repetition(ids) > DegenerateRepetition
}

// sideEffects fills in the side effects of completions cs made with an
// intervention (steering, ablation), each with its prompt and generated
// ids, against unsteered, the completions of the same prompts without it,
// in the same order:
//
//   - KL: KL(unsteered ‖ steered) of the next-token distribution, averaged
//     over the positions of the unsteered continuation, teacher-forced
//     (models.Compare): it measures the intervention, not a different text;
//   - Perplexity: exp of the mean negative log-likelihood of the steered
//     completion's generated tokens under the unsteered model;
//   - Repetition and Degenerate: of the completion's own tokens.
func sideEffects(m *models.Model, intervention models.ForwardOptions, unsteered, cs []EvalCompletion, batchSize int) error {
	kl, err := MeanKL(m, intervention, unsteered, batchSize)
	if err != nil {
		return err
	}
	for start := 0; start < len(cs); start += batchSize {
		batch := cs[start:min(start+batchSize, len(cs))]
		seqs, from := continuations(batch)
		res, err := m.Compare(seqs, from, models.ForwardOptions{})
		if err != nil {
			return err
		}
		for i := range batch {
			c := &batch[i]
			c.Perplexity = math.Exp(-mean(res.CleanLogProb[i]))
			c.Repetition = Repetition(replyIDs(c))
			c.Degenerate = IsDegenerate(c.Response, replyIDs(c))
		}
	}
	for i := range cs {
		cs[i].KL = kl[i]
	}
	return nil
}

// MeanKL returns, per completion, the KL(clean ‖ intervened) that the
// interventions of opts (steering, ablation) cause on the next-token
// distribution, averaged over the positions of that completion's generated
// tokens, teacher-forced (models.Compare). Completions are typically the
// unsteered ones, so the KL measures the intervention on the model's own text.
func MeanKL(m *models.Model, opts models.ForwardOptions, completions []EvalCompletion, batchSize int) ([]float64, error) {
	batchSize = positiveOr(batchSize, 8)
	out := make([]float64, 0, len(completions))
	for start := 0; start < len(completions); start += batchSize {
		seqs, from := continuations(completions[start:min(start+batchSize, len(completions))])
		res, err := m.Compare(seqs, from, opts)
		if err != nil {
			return nil, err
		}
		for _, kl := range res.KL {
			out = append(out, mean(kl))
		}
	}
	return out, nil
}

// continuations are prompt + generated ids, scored from the first generated token.
func continuations(cs []EvalCompletion) ([][]int32, []int) {
	seqs, from := make([][]int32, len(cs)), make([]int, len(cs))
	for i, c := range cs {
		seqs[i] = append(append([]int32{}, c.PromptTokenIDs...), c.GeneratedIDs...)
		from[i] = len(c.PromptTokenIDs)
	}
	return seqs, from
}

// replyIDs are the completion's tokens without the stop token.
func replyIDs(c *EvalCompletion) []int32 { return c.GeneratedIDs[:c.NTokens] }

// Stat summarises one side effect over a coefficient's completions.
type Stat struct {
	Mean float64 `json:"mean"`
	Std  float64 `json:"std"` // population standard deviation
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
}

// statOf summarises xs (the zero Stat for none).
func statOf(xs []float64) Stat {
	if len(xs) == 0 {
		return Stat{}
	}
	s := Stat{Mean: mean(xs), Min: math.Inf(1), Max: math.Inf(-1)}
	var ss float64
	for _, x := range xs {
		ss += (x - s.Mean) * (x - s.Mean)
		s.Min, s.Max = math.Min(s.Min, x), math.Max(s.Max, x)
	}
	s.Std = math.Sqrt(ss / float64(len(xs)))
	return s
}

// steerAt is the forward options of one steering.
func steerAt(s models.Steering) models.ForwardOptions {
	return models.ForwardOptions{Steer: []models.Steering{s}}
}
