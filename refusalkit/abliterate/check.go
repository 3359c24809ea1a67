package abliterate

import (
	"fmt"
	"math"

	"github.com/refusalkit/refusalkit/models"
)

// Check is how the written model compares with its source on chat
// prompts, at the reply's first token.
type Check struct {
	NPrompts int    `json:"n_prompts"`
	Prompts  string `json:"prompts"` // where they came from
	// MaxLogitDiff is the largest |logit| difference between the written
	// model and the source with the direction ablated at run time: how
	// exactly the file holds the ablation.
	MaxLogitDiff float64 `json:"max_logit_diff_vs_runtime_ablation"`
	// FirstTokenKL is the mean KL(source ‖ written) of the first reply
	// token's distribution: what heretic reports as the KL divergence from
	// the original model on harmless prompts.
	FirstTokenKL float64 `json:"first_token_kl"`
}

// Compare runs the chat-templated prompts through the source (plain and
// with direction ablated at run time) and through the written model, in
// batches of batch.
func Compare(src, written *models.Model, direction []float32, prompts []string, batch int) (*Check, error) {
	r, err := unit(direction)
	if err != nil {
		return nil, err
	}
	dir := make([]float32, len(r))
	for i, v := range r {
		dir[i] = float32(v)
	}
	c := &Check{NPrompts: len(prompts)}
	for from := 0; from < len(prompts); from += batch {
		var seqs [][]int32
		for _, p := range prompts[from:min(from+batch, len(prompts))] {
			_, ids, err := src.EncodePrompt(p)
			if err != nil {
				return nil, err
			}
			seqs = append(seqs, ids)
		}
		clean, err := src.Forward(seqs, models.ForwardOptions{})
		if err != nil {
			return nil, err
		}
		ablated, err := src.Forward(seqs, models.ForwardOptions{Ablate: dir})
		if err != nil {
			return nil, err
		}
		got, err := written.Forward(seqs, models.ForwardOptions{})
		if err != nil {
			return nil, err
		}
		for i := range seqs {
			if len(got.Logits[i]) != len(clean.Logits[i]) {
				return nil, fmt.Errorf("the written model has %d logits, the source %d", len(got.Logits[i]), len(clean.Logits[i]))
			}
			for j, v := range got.Logits[i] {
				c.MaxLogitDiff = math.Max(c.MaxLogitDiff, math.Abs(float64(v-ablated.Logits[i][j])))
			}
			c.FirstTokenKL += kl(clean.Logits[i], got.Logits[i]) / float64(len(prompts))
		}
	}
	return c, nil
}

// kl is KL(softmax(p) ‖ softmax(q)), in float64.
func kl(p, q []float32) float64 {
	lp, lq := logSoftmax(p), logSoftmax(q)
	s := 0.0
	for i := range lp {
		s += math.Exp(lp[i]) * (lp[i] - lq[i])
	}
	return s
}

func logSoftmax(x []float32) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v))
	}
	z := 0.0
	for _, v := range x {
		z += math.Exp(float64(v) - m)
	}
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v) - m - math.Log(z)
	}
	return out
}
