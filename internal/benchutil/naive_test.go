package benchutil

import (
	"math"
	"testing"

	"github.com/refusalkit/refusalkit/internal/testutil"
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
