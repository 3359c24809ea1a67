package refusalkit

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit/judge"
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

// intervened is an intervention and the completions made with it, of the
// same prompts and in the same order as the unsteered completions it is
// measured against.
type intervened struct {
	opts models.ForwardOptions
	cs   []EvalCompletion // filled in by sideEffects
	// unsteered marks the intervention that changes nothing (coefficient 0,
	// or the baseline of an ablation): cs are then the unsteered completions
	// themselves, their KL is 0 by definition, and their perplexity comes
	// from the unsteered completions' reference pass.
	unsteered bool
}

// sideEffects fills in the side effects of each intervention's completions
// against unsteered:
//
//   - KL: KL(unsteered ‖ steered) of the next-token distribution, averaged
//     over the positions of the unsteered continuation, teacher-forced
//     (models.Reference): it measures the intervention, not a different text;
//   - Perplexity: exp of the mean negative log-likelihood of the completion's
//     generated tokens under the unsteered model;
//   - Repetition and Degenerate: of the completion's own tokens;
//   - Outcome: breaks down when Degenerate, else jd's verdict.
//
// Each batch of unsteered continuations runs once through the clean model
// and is compared with every intervention, so k interventions cost k + 1
// passes for the KL instead of 2k; the clean pass also gives the unsteered
// completions' perplexity.
func sideEffects(m *models.Model, jd judge.Judge, unsteered []EvalCompletion, ivs []intervened, batchSize int) error {
	var steered []models.ForwardOptions
	for _, iv := range ivs {
		if iv.unsteered {
			if len(iv.cs) != len(unsteered) {
				return fmt.Errorf("side effects: %d unsteered completions and %d of the same prompts", len(unsteered), len(iv.cs))
			}
			continue
		}
		if len(iv.cs) != len(unsteered) {
			return fmt.Errorf("side effects: %d completions with an intervention for %d unsteered ones", len(iv.cs), len(unsteered))
		}
		steered = append(steered, iv.opts)
	}
	kls, cleanLogProbs, err := compareAll(m, steered, unsteered, batchSize)
	if err != nil {
		return err
	}
	k := 0
	for _, iv := range ivs {
		logProbs := cleanLogProbs
		if iv.unsteered {
			for i := range iv.cs {
				iv.cs[i].KL = 0
			}
		} else {
			for i := range iv.cs {
				iv.cs[i].KL = kls[k][i]
			}
			k++
			if logProbs, err = cleanLogProbsOf(m, iv.cs, batchSize); err != nil {
				return err
			}
		}
		for i := range iv.cs {
			c := &iv.cs[i]
			c.Perplexity = math.Exp(-mean(logProbs[i]))
			c.Repetition = Repetition(replyIDs(c))
			c.Degenerate = IsDegenerate(c.Response, replyIDs(c))
			c.Outcome = c.outcome(jd.Verdict(c.Response))
		}
	}
	return nil
}

// MeanKL returns, per completion, the KL(clean ‖ intervened) that the
// interventions of opts (steering, ablation) cause on the next-token
// distribution, averaged over the positions of that completion's generated
// tokens, teacher-forced (models.Compare). Completions are typically the
// unsteered ones, so the KL measures the intervention on the model's own text.
func MeanKL(m *models.Model, opts models.ForwardOptions, completions []EvalCompletion, batchSize int) ([]float64, error) {
	kls, _, err := compareAll(m, []models.ForwardOptions{opts}, completions, batchSize)
	if err != nil {
		return nil, err
	}
	return kls[0], nil
}

// compareAll is MeanKL for several interventions at once, each batch of
// completions run once through the clean model (models.Reference); it also
// returns the completions' clean log-probabilities.
func compareAll(m *models.Model, interventions []models.ForwardOptions, completions []EvalCompletion, batchSize int) (kls, cleanLogProbs [][]float64, err error) {
	batchSize = positiveOr(batchSize, 8)
	kls = make([][]float64, len(interventions))
	resume := models.ReferenceOptions{Resume: resumeLayers(interventions)}
	for start := 0; start < len(completions); start += batchSize {
		seqs, from := continuations(completions[start:min(start+batchSize, len(completions))])
		if len(interventions) == 0 {
			lp, err := m.LogProbs(seqs, from)
			if err != nil {
				return nil, nil, err
			}
			cleanLogProbs = append(cleanLogProbs, lp...)
			continue
		}
		ref, err := m.NewReference(seqs, from, resume)
		if err != nil {
			return nil, nil, err
		}
		cleanLogProbs = append(cleanLogProbs, ref.CleanLogProb...)
		for k, opts := range interventions {
			res, err := ref.Compare(opts)
			if err != nil {
				ref.Close()
				return nil, nil, err
			}
			for _, kl := range res.KL {
				kls[k] = append(kls[k], mean(kl))
			}
		}
		ref.Close()
	}
	return kls, cleanLogProbs, nil
}

// resumeLayers are the layers a reference keeps the clean stream of, so
// that each comparison runs only the blocks from its first intervened
// layer on (models.ForwardOptions.FirstIntervenedLayer): those layers
// themselves when there are at most maxResumeLayers, else each rounded
// down to a multiple of the count that keeps them that few (every layer
// for steering_kl), since each layer resumed at compiles a program of its own.
func resumeLayers(interventions []models.ForwardOptions) []int {
	firsts := map[int]bool{}
	for _, opts := range interventions {
		if first := opts.FirstIntervenedLayer(); first > 0 {
			firsts[first] = true
		}
	}
	layers := slices.Sorted(maps.Keys(firsts))
	if len(layers) <= maxResumeLayers {
		return layers
	}
	step := (layers[len(layers)-1] + maxResumeLayers) / maxResumeLayers
	rounded := map[int]bool{}
	for _, l := range layers {
		rounded[l/step*step] = true
	}
	return slices.Sorted(maps.Keys(rounded))
}

// maxResumeLayers bounds the comparison programs a reference's interventions compile.
const maxResumeLayers = 6

// cleanLogProbsOf returns the clean model's log-probabilities of each
// completion's generated tokens, one forward pass per batch.
func cleanLogProbsOf(m *models.Model, completions []EvalCompletion, batchSize int) ([][]float64, error) {
	_, lp, err := compareAll(m, nil, completions, batchSize)
	return lp, err
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
