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

// One Reference serves several interventions: each comparison equals the
// one a fresh Compare makes (the clean distributions are read, not used up),
// and LogProbs' single pass gives the reference's clean log-probabilities.
func TestReferenceReused(t *testing.T) {
	m := newTinyForTest(t, TinyConfig())
	seqs := [][]int32{{5, 9, 17, 3, 44, 8}, {12, 7, 7, 30}, {3, 3, 9}}
	from := []int{2, 1, 2}
	vec := make([]float32, m.Config.DModel)
	for d := range vec {
		vec[d] = float32(d%7) - 3
	}
	ref, err := m.NewReference(seqs, from, ReferenceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for _, opts := range []ForwardOptions{
		{Steer: []Steering{{Layer: 1, Coeff: 2, Vector: vec}}},
		{Ablate: unit(vec)},
		{Steer: []Steering{{Layer: 0, Coeff: -1, Vector: vec}}},
	} {
		got, err := ref.Compare(opts)
		if err != nil {
			t.Fatal(err)
		}
		want, err := m.Compare(seqs, from, opts)
		if err != nil {
			t.Fatal(err)
		}
		for i := range seqs {
			for j := range want.KL[i] {
				if got.KL[i][j] != want.KL[i][j] || got.LogProb[i][j] != want.LogProb[i][j] {
					t.Errorf("%+v, sequence %d token %d: KL %g and log-probability %g from a reused reference, %g and %g fresh",
						opts, i, j, got.KL[i][j], got.LogProb[i][j], want.KL[i][j], want.LogProb[i][j])
				}
			}
		}
	}
	lp, err := m.LogProbs(seqs, from)
	if err != nil {
		t.Fatal(err)
	}
	for i := range seqs {
		for j := range lp[i] {
			if math.Abs(lp[i][j]-ref.CleanLogProb[i][j]) > 1e-6 {
				t.Errorf("sequence %d token %d: LogProbs %g, reference %g", i, j, lp[i][j], ref.CleanLogProb[i][j])
			}
		}
	}
	ref.Close()
	if _, err := ref.Compare(ForwardOptions{}); err == nil {
		t.Error("a closed reference compared")
	}
}

// unit is v scaled to length 1.
func unit(v []float32) []float32 {
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) / math.Sqrt(n))
	}
	return out
}

// A reference that keeps the clean stream at some layers resumes a steering
// comparison at the latest of them at or before its first steered layer,
// and gives what the full pass gives; ablation still runs every block. The
// scored window covers a short reply after a long prompt: its clean
// log-probabilities are those of separate forward passes.
func TestReferenceResume(t *testing.T) {
	cfg := TinyConfig()
	cfg.NumLayers = 4
	m := newTinyForTest(t, cfg)
	long := make([]int32, 40) // P = 64 and a 32-position window: the prompt's head is not scored
	for i := range long {
		long[i] = int32(3 + i*7%200)
	}
	seqs := [][]int32{long, {12, 7, 7, 30}, {3, 3, 9, 41, 5}}
	from := []int{36, 1, 2}
	vec := make([]float32, m.Config.DModel)
	for d := range vec {
		vec[d] = float32(d%7) - 3
	}
	full, err := m.NewReference(seqs, from, ReferenceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	kept, err := m.NewReference(seqs, from, ReferenceOptions{Resume: []int{0, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	if full.window != 32 || full.s.prefillLen != 64 {
		t.Fatalf("window %d of %d positions, want 32 of 64", full.window, full.s.prefillLen)
	}
	for i, seq := range seqs {
		for j, lp := range full.CleanLogProb[i] {
			tok := from[i] + j
			prefix, err := m.Forward([][]int32{seq[:tok]}, ForwardOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if want := logSoftmaxAt(prefix.Logits[0], seq[tok]); math.Abs(lp-want) > 1e-4 {
				t.Errorf("sequence %d token %d: log-probability %g, separate forward pass %g", i, tok, lp, want)
			}
			if kept.CleanLogProb[i][j] != lp {
				t.Errorf("sequence %d token %d: log-probability %g keeping streams, %g without", i, tok, kept.CleanLogProb[i][j], lp)
			}
		}
	}
	rows := [][]Steering{{{Layer: 3, Coeff: 1, Vector: vec}}, {{Layer: 2, Coeff: -2, Vector: vec}}, nil}
	for _, c := range []struct {
		opts   ForwardOptions
		resume int
	}{
		{ForwardOptions{Steer: []Steering{{Layer: 2, Coeff: 2, Vector: vec}}}, 2},
		{ForwardOptions{Steer: []Steering{{Layer: 3, Coeff: 4, Vector: vec}, {Layer: 2, Coeff: 1, Vector: vec}}}, 2},
		{ForwardOptions{Steer: []Steering{{Layer: 1, Coeff: 2, Vector: vec}}}, 0}, // nothing kept at or before layer 1
		{ForwardOptions{SteerRows: rows}, 2},
		{ForwardOptions{Ablate: unit(vec), Steer: []Steering{{Layer: 3, Coeff: 1, Vector: vec}}}, 0},
	} {
		if got := kept.resumeAt(c.opts); got != c.resume {
			t.Errorf("%+v: resumes at block %d, want %d", c.opts, got, c.resume)
		}
		a, err := full.Compare(c.opts)
		if err != nil {
			t.Fatal(err)
		}
		b, err := kept.Compare(c.opts)
		if err != nil {
			t.Fatal(err)
		}
		worst, moved := 0.0, 0.0
		for i := range seqs {
			for j := range a.KL[i] {
				worst = math.Max(worst, math.Max(math.Abs(a.KL[i][j]-b.KL[i][j]), math.Abs(a.LogProb[i][j]-b.LogProb[i][j])))
				moved = math.Max(moved, a.KL[i][j])
			}
		}
		t.Logf("resume at %d: largest difference from the full pass %.3g (largest KL %.3g)", c.resume, worst, moved)
		if worst > 1e-6 || moved == 0 {
			t.Errorf("%+v: resumed comparison differs from the full pass by up to %g (largest KL %g)", c.opts, worst, moved)
		}
	}
	if _, err := m.NewReference(seqs, from, ReferenceOptions{Resume: []int{4}}); err == nil {
		t.Error("resume at layer 4 of 4 accepted")
	}
}
