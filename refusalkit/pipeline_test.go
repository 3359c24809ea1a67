package refusalkit

import (
	"math"
	"testing"

	"github.com/refusalkit/refusalkit/internal/testutil"
	"github.com/refusalkit/refusalkit/models"
)

// tinyExtraction is an extraction on the tiny model, which never refuses:
// its kept sets stand in by splitting compliant responses in two, and its
// vector is scaled by 20, large enough to move the tiny model.
func tinyExtraction(t *testing.T) (*models.Model, *Extraction) {
	t.Helper()
	m := testutil.TinyModel(t)
	rs, err := GenerateResponses(m, []string{"one", "two"}, ModeCompliant, smallGenerateConfig())
	if err != nil {
		t.Fatal(err)
	}
	x := &Extraction{FilteredRefusal: rs[:3], FilteredCompliant: rs[3:]}
	v, err := ComputeRefusalVector(m.Alias(), x.FilteredRefusal, x.FilteredCompliant)
	if err != nil {
		t.Fatal(err)
	}
	x.Vector = v.Scaled(20)
	return m, x
}

func smallGenerateConfig() GenerateConfig {
	return GenerateConfig{NCompletions: 3, MaxNewTokens: 6, BatchSize: 4}
}

// The vector must equal mean(refusal) − mean(compliant) of activations
// recomputed by a separate forward pass over prompt + response.
func TestVectorIsDifferenceOfRecomputedMeans(t *testing.T) {
	m := testutil.TinyModel(t)
	queries := []string{"first question", "a second, longer question", "third"}
	rs, err := GenerateResponses(m, queries, ModeCompliant, smallGenerateConfig())
	if err != nil {
		t.Fatal(err)
	}
	// The tiny model never writes a refusal phrase, so split its responses
	// by hand into two groups standing in for the kept sets.
	var groupA, groupB []Response
	for i, r := range rs {
		if r.Means == nil {
			t.Fatalf("response %d has no captured activations", i)
		}
		if i%2 == 0 {
			groupA = append(groupA, r)
		} else {
			groupB = append(groupB, r)
		}
	}
	v, err := ComputeRefusalVector(m.Alias(), groupA, groupB)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Data) != m.Config.NumLayers+1 || v.DModel != m.Config.DModel {
		t.Fatalf("vector shape [%d, %d], want [%d, %d]", len(v.Data), v.DModel, m.Config.NumLayers+1, m.Config.DModel)
	}
	recompute := func(g []Response) [][]float64 {
		cp := make([]Response, len(g))
		copy(cp, g)
		for i := range cp {
			cp[i].Means = nil
		}
		if err := MeanActivations(m, cp, 1); err != nil {
			t.Fatal(err)
		}
		mean := SumActivations(cp).Mean()
		return mean
	}
	a, b := recompute(groupA), recompute(groupB)
	for l := range v.Data {
		for d := range v.Data[l] {
			if diff := math.Abs(float64(v.Data[l][d]) - (a[l][d] - b[l][d])); diff > 1e-4 {
				t.Fatalf("boundary %d dim %d: vector %g, recomputed difference %g", l, d, v.Data[l][d], a[l][d]-b[l][d])
			}
		}
	}
}

func contains(s, sub string) bool { return len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0) }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// Sampling is per (mode, query, completion): the batch size changes nothing.
func TestGenerationIndependentOfBatchSize(t *testing.T) {
	m := testutil.TinyModel(t)
	queries := []string{"alpha", "beta"}
	a := smallGenerateConfig()
	b := a
	b.BatchSize = 1
	ra, err := GenerateResponses(m, queries, ModeRefusal, a)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := GenerateResponses(m, queries, ModeRefusal, b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ra {
		if ra[i].Response != rb[i].Response {
			t.Errorf("response %d differs between batch sizes 4 and 1: %q vs %q", i, ra[i].Response, rb[i].Response)
		}
	}
}
