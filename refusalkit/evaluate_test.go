package refusalkit

import (
	"math"
	"testing"

	"github.com/refusalkit/refusalkit/internal/testutil"
	"github.com/refusalkit/refusalkit/models"
)

func TestCoeffKeyLikePython(t *testing.T) {
	for c, want := range map[float64]string{0: "0.0", 0.5: "0.5", 1: "1.0", 2: "2.0", 5: "5.0", 10: "10.0", 0.25: "0.25", -1: "-1.0"} {
		if got := CoeffKey(c); got != want {
			t.Errorf("CoeffKey(%g) = %q, want %q", c, got, want)
		}
	}
}

func TestRefusalScore(t *testing.T) {
	// Two tokens, equal logits: P(refusal) = 1/2, so log-odds 0.
	if s := RefusalScore([]float32{1, 1}, []int32{0}); math.Abs(s) > 1e-12 {
		t.Errorf("score %g, want 0", s)
	}
	// logits (log 3, 0): P = 3/4 vs 1/4 → log 3.
	if s := RefusalScore([]float32{float32(math.Log(3)), 0}, []int32{0}); math.Abs(s-math.Log(3)) > 1e-6 {
		t.Errorf("score %g, want log 3", s)
	}
	// A dominant refusal token stays finite and large.
	if s := RefusalScore([]float32{100, 0, 0}, []int32{0}); !(s > 90) || math.IsInf(s, 0) {
		t.Errorf("score %g, want about 99.3", s)
	}
}

func resp(ids ...int32) Response { return Response{TokenIDs: ids} }

func TestDeriveRefusalTokens(t *testing.T) {
	m := testutil.TinyModel(t)
	// Refusals start with 10 (6×), 11 (3×), 12 (2×), 13 (1×). Compliant
	// responses start with 11 twice out of 10 (20% > 5%: skipped), 12 never,
	// 10 once (10%: skipped too, though frequent), so 12 is kept; 13 is a
	// one-off and skipped. Coverage: 2 of 12.
	var ref, comp []Response
	for range 6 {
		ref = append(ref, resp(10, 1))
	}
	for range 3 {
		ref = append(ref, resp(11, 1))
	}
	ref = append(ref, resp(12), resp(12, 5), resp(13))
	for i := range 10 {
		switch {
		case i < 2:
			comp = append(comp, resp(11))
		case i == 2:
			comp = append(comp, resp(10))
		default:
			comp = append(comp, resp(int32(20+i)))
		}
	}
	rt, err := DeriveRefusalTokens(m, ref, comp)
	if err != nil {
		t.Fatal(err)
	}
	if rt.Source != "derived" || len(rt.IDs) != 1 || rt.IDs[0] != 12 {
		t.Fatalf("derived %+v, want ids [12]", rt)
	}
	if math.Abs(rt.Coverage-2.0/12) > 1e-12 || rt.ComplianceHits != 0 {
		t.Errorf("coverage %g, false positives %g", rt.Coverage, rt.ComplianceHits)
	}
	// A dominant refusal start that compliant responses rarely use is taken first.
	for range 30 {
		comp = append(comp, resp(40))
	}
	for range 20 {
		ref = append(ref, resp(30))
	}
	rt, _ = DeriveRefusalTokens(m, ref, comp)
	if len(rt.IDs) < 2 || rt.IDs[0] != 30 || rt.IDs[1] != 10 {
		t.Fatalf("derived %v, want [30 10 ...] (10 is now 1/40 of compliant starts)", rt.IDs)
	}
	// Without refusals: the first tokens of the spec's phrases.
	fb, err := DeriveRefusalTokens(m, nil, comp)
	if err != nil {
		t.Fatal(err)
	}
	if fb.Source != "fallback" || len(fb.IDs) == 0 {
		t.Fatalf("fallback %+v", fb)
	}
	if fb.IDs[0] != int32('I') {
		t.Errorf("fallback starts with %d, want the byte 'I' of \"I'm sorry\"", fb.IDs[0])
	}
}

// Layers come back sorted by steering score with the improvement over the
// baseline computed from the same numbers.
func TestScoreLayersSortedWithImprovement(t *testing.T) {
	m, x := tinyExtraction(t)
	v := x.Vector
	val := []string{"val one", "val two", "val three"}
	_, prompts, err := encodePrompts(m, val, models.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tokens := RefusalTokens{IDs: []int32{'I', 'N'}}
	s, err := ScoreLayers(m, v, val, tokens, ScoreConfig{BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.PerLayerScores) != m.Config.NumLayers {
		t.Fatalf("%d layers scored, want %d (rows before a block)", len(s.PerLayerScores), m.Config.NumLayers)
	}
	seen := map[int]bool{}
	for i, l := range s.PerLayerScores {
		seen[l.Layer] = true
		if i > 0 && l.SteeringScore > s.PerLayerScores[i-1].SteeringScore {
			t.Errorf("not sorted: %v", s.PerLayerScores)
		}
		if math.Abs(l.ImprovementOverBaseline-(l.SteeringScore-s.BaselineRefusalScore)) > 1e-12 {
			t.Errorf("layer %d: improvement %g ≠ %g − %g", l.Layer, l.ImprovementOverBaseline, l.SteeringScore, s.BaselineRefusalScore)
		}
	}
	if len(seen) != m.Config.NumLayers {
		t.Errorf("layers scored: %v", seen)
	}
	// Each layer's score equals the same layer scored alone.
	l0 := s.PerLayerScores[0]
	steer := [][]models.Steering{}
	for range prompts {
		steer = append(steer, []models.Steering{v.Steering(l0.Layer, 1)})
	}
	alone, err := RefusalScores(m, prompts, steer, tokens, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d := math.Abs(mean(alone) - l0.SteeringScore); d > 1e-4 {
		t.Errorf("layer %d: lean-sweep score %g, full steered pass %g", l0.Layer, l0.SteeringScore, mean(alone))
	}
}

// A zero coefficient gives byte-identical completions to the unsteered model.
func TestZeroCoefficientIsUnsteered(t *testing.T) {
	m, x := tinyExtraction(t)
	v := x.Vector
	instr := []string{"tell me", "something else entirely"}
	cfg := SweepConfig{MaxNewTokens: 10, BatchSize: 2}
	zero, err := SteeredCompletions(m, v, 1, 0, instr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := m.Generate(instr, models.GenerateOptions{MaxNewTokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	steered, err := SteeredCompletions(m, v, 1, 5, instr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	changed := false
	for i := range instr {
		if zero[i].Response != plain.Text[i] {
			t.Errorf("row %d: coefficient 0 gave %q, unsteered %q", i, zero[i].Response, plain.Text[i])
		}
		changed = changed || steered[i].Response != plain.Text[i]
	}
	if !changed {
		t.Errorf("coefficient 5 changed nothing: the comparison would prove nothing")
	}
}
