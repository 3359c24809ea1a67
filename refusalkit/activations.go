package refusalkit

import (
	"fmt"

	"github.com/refusalkit/refusalkit/models"
)

// MeanActivations sets the Means of every response that has none: the
// residual stream at every layer, [n_layers+1][d_model], averaged over the
// response's own tokens (its generated ids, without padding and without the
// end-of-turn token) with the same templated prompt in front (its
// PromptTokenIDs) — the Persona Vectors recipe (Chen et al. 2025).
// GenerateResponses already captures them while generating; this step is
// for responses read back from files, or generated without capture.
// Responses with no tokens get no Means. batchSize rows go through the
// model at once (0 = 8; the spec's reference implementation used 1).
func MeanActivations(m *models.Model, rs []Response, batchSize int) error {
	if batchSize < 0 {
		return fmt.Errorf("batch size must be positive, got %d", batchSize)
	}
	batchSize = positiveOr(batchSize, 8)
	var todo []int
	for i := range rs {
		if rs[i].Means == nil && len(rs[i].TokenIDs) > 0 {
			todo = append(todo, i)
		}
	}
	for start := 0; start < len(todo); start += batchSize {
		batch := todo[start:min(start+batchSize, len(todo))]
		seqs := make([][]int32, len(batch))
		masks := make([][]bool, len(batch))
		for j, i := range batch {
			r := &rs[i]
			prompt := r.PromptTokenIDs
			if prompt == nil {
				// Response files written before prompt ids were saved: their
				// prompts were tokenized whole, as here.
				var err error
				if prompt, err = m.Tokenizer.Encode(r.Prompt); err != nil {
					return fmt.Errorf("response %d: %w", i, err)
				}
			}
			seqs[j] = append(append([]int32{}, prompt...), r.TokenIDs...)
			masks[j] = make([]bool, len(seqs[j]))
			for k := len(prompt); k < len(seqs[j]); k++ {
				masks[j][k] = true
			}
		}
		res, err := m.Forward(seqs, models.ForwardOptions{CaptureMask: masks})
		if err != nil {
			return fmt.Errorf("activations of responses %d-%d: %w", batch[0], batch[len(batch)-1], err)
		}
		for j, i := range batch {
			rs[i].Means = res.Means[j]
		}
	}
	return nil
}

// MustMeanActivations is MeanActivations for notebooks.
func MustMeanActivations(m *models.Model, rs []Response, batchSize int) {
	if err := MeanActivations(m, rs, batchSize); err != nil {
		panic(err)
	}
}
