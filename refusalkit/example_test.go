package refusalkit_test

import (
	"fmt"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
)

// A script chains the steps in memory, no file read or written: Extract,
// then the evaluation's two steps, ScoreLayers and Sweep (Evaluate runs
// both). Each config's zero value is the spec's; these are small settings.
func Example() {
	m, err := models.Load(models.DefaultModel, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	x, err := refusalkit.Extract(m, refusalkit.ExtractConfig{NSamples: 3, GenerateConfig: refusalkit.GenerateConfig{
		NCompletions: 4, MaxNewTokens: 16, RefusalInstructions: []string{refusalkit.DeclineInstruction}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("refusal vector: %d layers × %d\n", len(x.Vector.Data), x.Vector.DModel)

	// Held-out queries, disjoint from the extraction's, and the refusal
	// tokens the model's own kept refusals start with.
	val := refusalkit.MustEvalQueries("", refusalkit.Validation, 3, refusalkit.SpecValidationSeed, x.Instructions())
	test := refusalkit.MustEvalQueries("", refusalkit.Test, 3, refusalkit.SpecTestSeed, x.Instructions())
	tokens := refusalkit.MustDeriveRefusalTokens(m, x.FilteredRefusal, x.FilteredCompliant)

	scores, err := refusalkit.ScoreLayers(m, x.Vector, val, tokens, refusalkit.ScoreConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("steering scores for %d layers\n", len(scores.PerLayerScores))
	sweep, err := refusalkit.Sweep(m, x.Vector, scores.Selected().Layer, test,
		refusalkit.SweepConfig{Coefficients: []float64{0, 1}, MaxNewTokens: 8})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("completions at c = 0 and c = 1: %d and %d\n", len(sweep[0]), len(sweep[1]))
	// Output:
	// refusal vector: 31 layers × 576
	// steering scores for 30 layers
	// completions at c = 0 and c = 1: 3 and 3
}

// The vector is the difference of the mean activations of the kept refusal
// and the kept compliant responses, at every layer.
func ExampleComputeRefusalVector() {
	// Two layers of d_model 2, as MeanActivations or generation fills them.
	refusal := []refusalkit.Response{{Means: [][]float64{{1, 0}, {4, 4}}}, {Means: [][]float64{{3, 0}, {2, 2}}}}
	compliant := []refusalkit.Response{{Means: [][]float64{{0, 1}, {1, 1}}}}
	v, err := refusalkit.ComputeRefusalVector("example", refusal, compliant)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(v.Data, "norms", v.Norms())
	// Output: [[2 -1] [2 2]] norms [2.23606797749979 2.8284271247461903]
}

// Queries are sampled from one split of the embedded ALPACA pool; the draw
// depends only on the split, the count and the seed.
func ExampleSampleQueries() {
	qs := refusalkit.MustSampleQueries(refusalkit.MustTrainPool(""), 2, refusalkit.SpecSeed)
	fmt.Println(len(qs), refusalkit.SplitOf(qs[0]), refusalkit.SplitOf(qs[1]))
	// Output: 2 train train
}
