package benchutil

import (
	"math"
	"testing"

	"github.com/refusalkit/refusalkit/internal/testutil"
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
)

// The naive baseline computes what refusalkit.ScoreLayers computes: the
// same ranking and, per layer, the same score within float rounding.
func TestScoreLayersNaiveAgrees(t *testing.T) {
	m := testutil.TinyModel(t)
	rs, err := refusalkit.GenerateResponses(m, []string{"one", "two"}, refusalkit.ModeCompliant,
		refusalkit.GenerateConfig{NCompletions: 3, MaxNewTokens: 6, BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	v, err := refusalkit.ComputeRefusalVector(m.Alias(), rs[:3], rs[3:])
	if err != nil {
		t.Fatal(err)
	}
	v = v.Scaled(20) // a vector large enough to move the tiny model
	val := []string{"val one", "val two", "val three"}
	tokens := refusalkit.RefusalTokens{IDs: []int32{'I', 'N'}}
	lean, err := refusalkit.ScoreLayers(m, v, val, tokens, refusalkit.ScoreConfig{BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	naive, err := ScoreLayersNaive(m, v, val, tokens, 4)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range naive.PerLayerScores {
		if l.Layer != lean.PerLayerScores[i].Layer || math.Abs(l.SteeringScore-lean.PerLayerScores[i].SteeringScore) > 1e-4 {
			t.Errorf("rank %d: naive sweep gives layer %d score %g, lean sweep layer %d score %g",
				i, l.Layer, l.SteeringScore, lean.PerLayerScores[i].Layer, lean.PerLayerScores[i].SteeringScore)
		}
	}
}

// The naive generator captures nothing: GenerateResponses leaves Means nil
// (it used to index the missing means and panic), MeanActivations fills them,
// and the vector is the one the capturing generation makes.
func TestNaiveGenerationMakesTheSameVector(t *testing.T) {
	m := testutil.TinyModel(t)
	cfg := refusalkit.GenerateConfig{NCompletions: 3, MaxNewTokens: 6, BatchSize: 4}
	queries := []string{"one", "two"}
	captured, err := refusalkit.GenerateResponses(m, queries, refusalkit.ModeCompliant, cfg)
	if err != nil {
		t.Fatal(err)
	}
	naive, err := refusalkit.GenerateResponses(m, queries, refusalkit.ModeCompliant, cfg, refusalkit.WithGenerator(Naive(m)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range naive {
		if naive[i].Means != nil {
			t.Fatalf("response %d: the naive generator captures nothing, yet it has Means", i)
		}
		if naive[i].Response != captured[i].Response {
			t.Fatalf("response %d: naive %q, captured %q", i, naive[i].Response, captured[i].Response)
		}
	}
	if err := refusalkit.MeanActivations(m, naive, 4); err != nil {
		t.Fatal(err)
	}
	want, err := refusalkit.ComputeRefusalVector(m.Alias(), captured[:3], captured[3:])
	if err != nil {
		t.Fatal(err)
	}
	got, err := refusalkit.ComputeRefusalVector(m.Alias(), naive[:3], naive[3:])
	if err != nil {
		t.Fatal(err)
	}
	for l := range want.Data {
		for d := range want.Data[l] {
			if diff := math.Abs(float64(got.Data[l][d] - want.Data[l][d])); diff > 1e-4 {
				t.Fatalf("row %d dim %d: naive %g, captured %g", l, d, got.Data[l][d], want.Data[l][d])
			}
		}
	}
}

// A generator that returns means for some rows only is refused, not indexed.
func TestPartialMeansRefused(t *testing.T) {
	m := testutil.TinyModel(t)
	partial := func(prompts [][]int32, opts models.GenerateOptions) (*models.Generation, error) {
		g, err := m.GenerateIDs(prompts, opts)
		if err == nil {
			g.Means = g.Means[:1]
		}
		return g, err
	}
	_, err := refusalkit.GenerateResponses(m, []string{"one"}, refusalkit.ModeCompliant,
		refusalkit.GenerateConfig{NCompletions: 2, MaxNewTokens: 4, BatchSize: 2}, refusalkit.WithGenerator(partial))
	want := "generate compliant responses 0-1: the generator returned captured means for 1 of 2 rows (it must return them for every row, or none)"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
}
