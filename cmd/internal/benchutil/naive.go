package benchutil

import (
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
)

// GenerationStats sums what the batches of a generation did.
type GenerationStats struct {
	Rows            int
	NewTokens       int // generated tokens
	TokensProcessed int // token positions run through the model, padding included
	Seconds         float64
}

// Counting returns a generator that runs the model as built and adds every
// batch to st (refusalkit.WithGenerator).
func Counting(m *models.Model, st *GenerationStats) refusalkit.Generator {
	return func(prompts [][]int32, opts models.GenerateOptions) (*models.Generation, error) {
		g, err := m.GenerateIDs(prompts, opts)
		if err != nil {
			return nil, err
		}
		st.Rows += len(prompts)
		st.TokensProcessed += g.TokensProcessed
		st.Seconds += (g.Prefill + g.Decode).Seconds()
		for _, t := range g.Tokens {
			st.NewTokens += len(t)
		}
		return g, nil
	}
}

// Naive returns a generator that runs the model's naive mode, the
// benchmark's baseline: every row prefilled, even rows sharing a prompt,
// every batch run to its last row, and nothing captured (the activations
// then take a forward pass of their own, as in the spec's implementation).
func Naive(m *models.Model) refusalkit.Generator {
	return func(prompts [][]int32, opts models.GenerateOptions) (*models.Generation, error) {
		opts.Naive, opts.Capture = true, false
		return m.GenerateIDs(prompts, opts)
	}
}

// ScoreLayersNaive computes the same scores as refusalkit.ScoreLayers the
// way the spec's method reads: a full steered forward pass per layer and batch.
func ScoreLayersNaive(m *models.Model, v *refusalkit.RefusalVector, instructions []string, tokens refusalkit.RefusalTokens, batchSize int) (*refusalkit.LayerScores, error) {
	prompts := make([][]int32, len(instructions))
	for i, s := range instructions {
		var err error
		if _, prompts[i], err = m.EncodePrompt(s); err != nil {
			return nil, err
		}
	}
	base, err := refusalkit.RefusalScores(m, prompts, nil, tokens, batchSize)
	if err != nil {
		return nil, err
	}
	perLayer := make([][]float64, v.NLayers)
	for l := range perLayer {
		steer := make([][]models.Steering, len(prompts))
		for i := range steer {
			steer[i] = []models.Steering{v.Steering(l, 1.0)}
		}
		if perLayer[l], err = refusalkit.RefusalScores(m, prompts, steer, tokens, batchSize); err != nil {
			return nil, err
		}
	}
	return refusalkit.NewLayerScores(v, instructions, tokens, base, perLayer), nil
}
