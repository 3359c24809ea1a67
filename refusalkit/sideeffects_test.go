package refusalkit

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/internal/testutil"
	"github.com/refusalkit/refusalkit/models"
)

func TestRepetition(t *testing.T) {
	for _, c := range []struct {
		ids  []int32
		want float64
	}{
		{nil, 0}, {[]int32{1, 2}, 0}, {[]int32{1, 2, 3, 4}, 0},
		{[]int32{1, 2, 3, 1, 2, 3}, 1.0 / 4},    // 3-grams 123 231 312 123: one repeat
		{[]int32{7, 7, 7, 7, 7, 7}, 3.0 / 4},    // 777 four times: three repeats
		{[]int32{1, 2, 1, 2, 1, 2, 1}, 3.0 / 5}, // 121 212 121 212 121
	} {
		if got := Repetition(c.ids); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("Repetition(%v) = %g, want %g", c.ids, got, c.want)
		}
	}
	if !IsDegenerate(" \n", []int32{5}) || IsDegenerate("fine", []int32{1, 2, 3, 4}) || !IsDegenerate("loop", []int32{7, 7, 7, 7, 7, 7}) {
		t.Error("IsDegenerate: empty and looping completions are degenerate, a plain one is not")
	}
}

// On the tiny model: the KL is exactly 0 at coefficient 0 and grows with
// the coefficient; the perplexity of the unsteered completion is exp of its
// mean negative log-likelihood computed by separate forward passes.
func TestSweepSideEffects(t *testing.T) {
	m, x := tinyExtraction(t)
	v := x.Vector
	instr := []string{"tell me", "something else entirely", "a third"}
	sweep, err := Sweep(m, v, 1, instr, SweepConfig{Coefficients: []float64{0, 0.5, 2}, MaxNewTokens: 8, BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	prev := -1.0
	for _, c := range []float64{0, 0.5, 2} {
		r := Tally(sweep[c])
		if c == 0 && (r.KL.Max != 0 || r.KL.Min != 0) {
			t.Errorf("coefficient 0: KL %+v, want exactly 0", r.KL)
		}
		if c > 0 && !(r.KL.Mean > prev) {
			t.Errorf("coefficient %g: mean KL %g, not above %g", c, r.KL.Mean, prev)
		}
		prev = r.KL.Mean
		if r.Perplexity.Min < 1 {
			t.Errorf("coefficient %g: perplexity %+v below 1", c, r.Perplexity)
		}
	}
	// The unsteered completions' perplexity comes from the KL's clean pass,
	// the steered ones' from a pass of their own: both are what separate
	// unsteered forward passes give.
	for _, c := range []float64{0, 2} {
		for i, comp := range sweep[c] {
			seq := append(append([]int32{}, comp.PromptTokenIDs...), comp.GeneratedIDs...)
			var nll float64
			for tok := len(comp.PromptTokenIDs); tok < len(seq); tok++ {
				res, err := m.Forward([][]int32{seq[:tok]}, models.ForwardOptions{})
				if err != nil {
					t.Fatal(err)
				}
				nll -= testutil.LogSoftmaxAt(res.Logits[0], seq[tok])
			}
			want := math.Exp(nll / float64(len(comp.GeneratedIDs)))
			if math.Abs(comp.Perplexity-want) > 1e-4*want {
				t.Errorf("coefficient %g, completion %d: perplexity %g, separate forward passes %g", c, i, comp.Perplexity, want)
			}
		}
	}
}

// steering_kl measures the KL at coefficient 1 at every layer and selects
// among the layers within the bound; when none is, it says so in one line.
func TestSteeringKLLayerSelection(t *testing.T) {
	m, x := tinyExtraction(t)
	cfg := EvalConfig{NValidation: 3, NTest: 2, RefusalTokenIDs: []int32{'I'}, LayerSelection: "steering_kl", MaxKL: 1e9,
		SweepConfig: SweepConfig{Coefficients: []float64{0, 1}, MaxNewTokens: 4, BatchSize: 4}}
	ev, err := Evaluate(m, x, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ev.Scores.PerLayerScores {
		if l.KL == nil || !(*l.KL > 0) {
			t.Errorf("layer %d: KL %v, want a positive measure", l.Layer, l.KL)
		}
	}
	if ev.Scores.Method != "steering_kl" || ev.Summary.SelectedLayer != ev.Scores.PerLayerScores[0].Layer {
		t.Errorf("method %q, selected %d", ev.Scores.Method, ev.Summary.SelectedLayer)
	}
	cfg.MaxKL = 1e-12
	if _, err := Evaluate(m, x, cfg); err == nil || !strings.Contains(err.Error(), "no layer keeps the KL at coefficient 1 within --max_kl 1e-12") {
		t.Errorf("an impossible bound: %v", err)
	}
}

// A reference keeps the stream at each steering comparison's first layer,
// at most maxResumeLayers of them: every layer (steering_kl) rounds down to
// a few; ablation resumes nowhere, and per-row steering at its rows' first layer.
func TestResumeLayers(t *testing.T) {
	at := func(layers ...int) models.ForwardOptions {
		var opts models.ForwardOptions
		for _, l := range layers {
			opts.Steer = append(opts.Steer, models.Steering{Layer: l})
		}
		return opts
	}
	sweep := []models.ForwardOptions{at(17), at(17), at(17)}
	if got := resumeLayers(sweep); !slices.Equal(got, []int{17}) {
		t.Errorf("a coefficient sweep at layer 17: resume at %v, want [17]", got)
	}
	if got := resumeLayers([]models.ForwardOptions{at(9, 4), {Ablate: []float32{1}}, {SteerRows: [][]models.Steering{nil, {{Layer: 5}, {Layer: 3}}}}}); !slices.Equal(got, []int{3, 4}) {
		t.Errorf("steering at 9 and 4, an ablation, per-row steering at 5 and 3: resume at %v, want [3 4]", got)
	}
	var every []models.ForwardOptions
	for l := range 30 {
		every = append(every, at(l))
	}
	got := resumeLayers(every)
	if !slices.Equal(got, []int{0, 5, 10, 15, 20, 25}) {
		t.Errorf("every layer of 30: resume at %v, want [0 5 10 15 20 25]", got)
	}
}
