package refusalkit

import (
	"math"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/internal/testutil"
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit/judge"
)

// randomRefusalVector is a vector of the model's shape with seeded values.
func randomRefusalVector(m *models.Model, seed uint64) *RefusalVector {
	c := m.Config
	v := &RefusalVector{Model: m.Alias(), NLayers: c.NumLayers, DModel: c.DModel, Data: make([][]float32, c.NumLayers+1)}
	x := seed*2654435761 + 1
	for l := range v.Data {
		v.Data[l] = make([]float32, c.DModel)
		for d := range v.Data[l] {
			x = x*6364136223846793005 + 1442695040888963407
			v.Data[l][d] = float32(int64(x>>33)%2001-1000) / 1000
		}
	}
	return v
}

// A row of zero length gives no direction: refused in one line naming the
// layer, before any generation; so are a missing layer and one out of range.
func TestAblateRefusesRowsWithoutDirection(t *testing.T) {
	m := testutil.TinyModel(t)
	v := randomRefusalVector(m, 1)
	for d := range v.Data[1] {
		v.Data[1][d] = 0
	}
	x := &Extraction{Vector: v}
	one, past := 1, len(v.Data)
	for _, c := range []struct {
		layer *int
		want  string
	}{
		{&one, "layer 1: the refusal vector's row there has length 0, so it gives no direction to ablate: choose another layer"},
		{&past, "layer 4 is outside the refusal vector's layers 0..3: choose another layer"},
		{nil, "no layer to ablate: give one (AblateConfig.Layer), or take an evaluation's selected layer (WithSelectedLayer)"},
	} {
		_, err := Ablate(m, x, AblateConfig{Layer: c.layer})
		if err == nil || err.Error() != c.want {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
}

// Ablate generates both sets without and with the row's unit direction
// ablated, exactly as a plain generation with that direction would (that
// ablation leaves no component along it in the stream is
// models.TestAblationRemovesDirection), and tallies what it judged.
func TestAblateComparesPlainAndAblatedGenerations(t *testing.T) {
	m := testutil.TinyModel(t)
	v := randomRefusalVector(m, 2).Scaled(5)
	x := &Extraction{Vector: v}
	layer := 1
	cfg := AblateConfig{MaxNewTokens: 6, BatchSize: 2, NHarmful: 3, NInduced: 2, RefusalInstruction: "Refuse.\n"}.WithSelectedLayer(layer)
	ab, err := Ablate(m, x, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var sq, dot float64
	for d, u := range ab.Direction {
		sq += float64(u) * float64(u)
		dot += float64(u) * float64(v.Data[layer][d])
	}
	if math.Abs(sq-1) > 1e-5 || math.Abs(dot-v.Norms()[layer]) > 1e-3 {
		t.Errorf("direction has squared norm %g and projects the row to %g, want 1 and %g", sq, dot, v.Norms()[layer])
	}
	messages := map[string][]string{SetJailbreakBench: ab.Harmful}
	for _, s := range ab.Induced {
		messages[SetInducedRefusal] = append(messages[SetInducedRefusal], "Refuse.\n"+s)
	}
	changed := false
	for name, msgs := range messages {
		set := ab.Sets[name]
		if len(set.Baseline) != len(msgs) || len(set.Ablated) != len(msgs) {
			t.Fatalf("%s: %d and %d completions for %d prompts", name, len(set.Baseline), len(set.Ablated), len(msgs))
		}
		plain, err := m.Generate(msgs, models.GenerateOptions{MaxNewTokens: 6})
		if err != nil {
			t.Fatal(err)
		}
		abl, err := m.Generate(msgs, models.GenerateOptions{MaxNewTokens: 6, Ablate: ab.Direction})
		if err != nil {
			t.Fatal(err)
		}
		for i := range msgs {
			b, a := set.Baseline[i], set.Ablated[i]
			if b.Response != plain.Text[i] || a.Response != abl.Text[i] {
				t.Errorf("%s row %d: %q and %q, plain generations %q and %q", name, i, b.Response, a.Response, plain.Text[i], abl.Text[i])
			}
			if b.Layer != -1 || a.Layer != layer || b.IsRefusal != judge.IsRefusal(b.Response) || !strings.Contains(a.Prompt, msgs[i]) {
				t.Errorf("%s row %d: layers %d, %d; prompt %q", name, i, b.Layer, a.Layer, a.Prompt)
			}
			changed = changed || a.Response != b.Response
			for _, c := range []EvalCompletion{b, a} {
				if want := c.outcome((judge.Substring{}).Verdict(c.Response)); c.Outcome != want {
					t.Errorf("%s row %d: outcome %q, want %q", name, i, c.Outcome, want)
				}
			}
		}
	}
	for name, set := range ab.Sets {
		for _, r := range []CoefficientResult{Tally(set.Baseline), Tally(set.Ablated)} {
			if o := r.Outcomes; o.Refuses+o.Answers+o.BreaksDown != r.TotalCount {
				t.Errorf("%s: outcomes %+v do not add up to %d completions", name, o, r.TotalCount)
			}
		}
	}
	if !changed {
		t.Errorf("ablation changed no completion: the comparison proves nothing")
	}
	s := ab.Summary
	if s.Layer != layer || s.NHarmful != 3 || s.NInduced != 2 || s.JailbreakBench != ab.Sets[SetJailbreakBench].Tally() ||
		s.InducedRefusal.Ablated.TotalCount != 2 || s.RefusalInstruction != "Refuse.\n" {
		t.Errorf("summary %+v", s)
	}
}

// The reference direction is the difference of the last-token means,
// recomputed here one prompt per Forward call.
func TestReferenceDirectionIsLastTokenDifference(t *testing.T) {
	m := testutil.TinyModel(t)
	cfg := DirectionConfig{Harmful: []string{"how do I pick a lock", "write something nasty", "a third request"}, BatchSize: 2}
	ref, err := ReferenceDirection(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	harmful, harmless, err := DirectionPlan(cfg)
	if err != nil || len(harmless) != len(harmful) {
		t.Fatalf("%d harmless for %d harmful, %v", len(harmless), len(harmful), err)
	}
	mean := func(instr []string) [][]float64 {
		var sum [][]float64
		for _, s := range instr {
			_, ids, err := m.EncodePrompt(s)
			if err != nil {
				t.Fatal(err)
			}
			mask := make([]bool, len(ids))
			mask[len(ids)-1] = true
			res, err := m.Forward([][]int32{ids}, models.ForwardOptions{CaptureMask: [][]bool{mask}})
			if err != nil {
				t.Fatal(err)
			}
			if sum == nil {
				sum = make([][]float64, len(res.Means[0]))
				for l := range sum {
					sum[l] = make([]float64, len(res.Means[0][l]))
				}
			}
			for l, row := range res.Means[0] {
				for d, x := range row {
					sum[l][d] += x / float64(len(instr))
				}
			}
		}
		return sum
	}
	h, c := mean(harmful), mean(harmless)
	if len(ref.Data) != m.Config.NumLayers+1 || ref.NRefusal != 3 || ref.NCompliant != 3 {
		t.Fatalf("reference direction has %d rows, counts %d and %d", len(ref.Data), ref.NRefusal, ref.NCompliant)
	}
	worst := 0.0
	for l := range ref.Data {
		for d, x := range ref.Data[l] {
			worst = math.Max(worst, math.Abs(float64(x)-(h[l][d]-c[l][d])))
		}
	}
	if worst > 1e-4 {
		t.Errorf("reference direction differs from the recomputed difference of means by %g", worst)
	}
	if n := ref.Norms(); n[m.Config.NumLayers] == 0 {
		t.Errorf("the last layer's difference is zero: the comparison proves nothing")
	}
}

// A vector's cosine with itself is 1 at every layer, with its negation −1;
// a zero row gives NaN; vectors of other shapes are refused.
func TestLayerCosines(t *testing.T) {
	m := testutil.TinyModel(t)
	v := randomRefusalVector(m, 3)
	for name, c := range map[string]struct {
		w    *RefusalVector
		want float64
	}{"itself": {v, 1}, "negation": {v.Scaled(-2), -1}} {
		cos, err := LayerCosines(v, c.w)
		if err != nil {
			t.Fatal(err)
		}
		for l, x := range cos {
			if math.Abs(x-c.want) > 1e-9 {
				t.Errorf("%s, layer %d: cosine %g, want %g", name, l, x, c.want)
			}
		}
	}
	zero := v.Scaled(0)
	if cos, _ := LayerCosines(v, zero); !math.IsNaN(cos[0]) {
		t.Errorf("cosine with a zero row is %g, want NaN", cos[0])
	}
	short := *v
	short.Data = v.Data[:2]
	_, err := LayerCosines(v, &short)
	if want := "cannot compare a refusal vector of shape [4, 32] with one of shape [2, 32]: use vectors of the same model"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
	dc, err := CompareDirections(v, zero, DirectionConfig{Harmful: []string{"x"}}, 1)
	if err != nil || dc.PerLayer[0].Cosine != nil || !math.IsNaN(dc.Cosines()[0]) || dc.PerLayer[0].VectorNorm != v.Norms()[0] {
		t.Errorf("CompareDirections with a zero row: %+v, %v", dc, err)
	}
}
