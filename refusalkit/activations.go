package refusalkit

import (
	"fmt"

	"github.com/refusalkit/refusalkit/models"
)

// ExtractResponseActivations sets each response's Means: the residual stream
// at every boundary, [n_layers+1][d_model], averaged over the response's own
// tokens (its generated ids, without padding and without the end-of-turn
// token) with the same templated prompt in front (its PromptTokenIDs) — the Persona Vectors recipe
// (Chen et al. 2025). Responses that already carry Means (captured during
// generation) are left alone unless recompute is set. Responses with no
// tokens get no Means. batchSize rows go through the model at once; the
// spec's reference implementation used 1.
func ExtractResponseActivations(m *models.Model, rs []Response, batchSize int, recompute bool) error {
	if batchSize <= 0 {
		return fmt.Errorf("batch size must be positive, got %d", batchSize)
	}
	var todo []int
	for i := range rs {
		if (recompute || rs[i].Means == nil) && len(rs[i].TokenIDs) > 0 {
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

// MustExtractResponseActivations is ExtractResponseActivations for notebooks.
func MustExtractResponseActivations(m *models.Model, rs []Response, batchSize int, recompute bool) {
	if err := ExtractResponseActivations(m, rs, batchSize, recompute); err != nil {
		panic(err)
	}
}
