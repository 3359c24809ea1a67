package models

import (
	"math"
	"testing"
)

// Compare's clean log-probabilities are what separate forward passes give
// (the last-position logits of every prefix, log-softmaxed in float64 here);
// a zero coefficient moves nothing, exactly; a growing one moves the
// distributions more.
func TestCompare(t *testing.T) {
	m := newTinyForTest(t, TinyConfig())
	seqs := [][]int32{{5, 9, 17, 3, 44, 8}, {12, 7, 7, 30}}
	from := []int{2, 1}
	vec := make([]float32, m.Config.DModel)
	for d := range vec {
		vec[d] = float32(d%5) - 2
	}
	steer := func(c float32) ForwardOptions {
		return ForwardOptions{Steer: []Steering{{Layer: 1, Coeff: c, Vector: vec}}}
	}
	zero, err := m.Compare(seqs, from, steer(0))
	if err != nil {
		t.Fatal(err)
	}
	for i, seq := range seqs {
		if len(zero.KL[i]) != len(seq)-from[i] {
			t.Fatalf("sequence %d: %d scored tokens, want %d", i, len(zero.KL[i]), len(seq)-from[i])
		}
		for j := range zero.KL[i] {
			tok := from[i] + j
			if zero.KL[i][j] != 0 || zero.LogProb[i][j] != zero.CleanLogProb[i][j] {
				t.Errorf("coefficient 0, sequence %d token %d: KL %g, log-probabilities %g and %g", i, tok, zero.KL[i][j], zero.LogProb[i][j], zero.CleanLogProb[i][j])
			}
			prefix, err := m.Forward([][]int32{seq[:tok]}, ForwardOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if want := logSoftmaxAt(prefix.Logits[0], seq[tok]); math.Abs(zero.CleanLogProb[i][j]-want) > 1e-4 {
				t.Errorf("sequence %d token %d: log-probability %g, separate forward pass %g", i, tok, zero.CleanLogProb[i][j], want)
			}
		}
	}
	prev := 0.0
	for _, c := range []float32{0.5, 2, 8} {
		r, err := m.Compare(seqs, from, steer(c))
		if err != nil {
			t.Fatal(err)
		}
		kl := 0.0
		for i := range r.KL {
			for _, x := range r.KL[i] {
				kl += x
			}
		}
		if !(kl > prev) {
			t.Errorf("coefficient %g: total KL %g, not above %g at the smaller coefficient", c, kl, prev)
		}
		prev = kl
	}
	if _, err := m.Compare(seqs, []int{0, 1}, ForwardOptions{}); err == nil {
		t.Error("from = 0 accepted: the first token has nothing to predict it")
	}
}

// logSoftmaxAt is log softmax(logits)[id] in float64 (internal/testutil has
// the same check for the other packages; it cannot be imported here).
func logSoftmaxAt(logits []float32, id int32) float64 {
	top := math.Inf(-1)
	for _, l := range logits {
		top = math.Max(top, float64(l))
	}
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l) - top)
	}
	return float64(logits[id]) - top - math.Log(sum)
}
