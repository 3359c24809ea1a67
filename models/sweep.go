package models

import (
	"fmt"

	"github.com/gomlx/gomlx/core/tensors"
)

// LayerSweep returns, for each prompt, reduce(last-position logits) without
// steering (base) and, for every layer l with vectors[l] set, with
// vectors[l] added to the residual stream entering block l at every
// position (steered[l]). reduce (e.g. a refusal score) runs as each batch
// comes back, so no [layers, prompts, vocab] logits are ever held.
//
// Steering at block l leaves blocks 0..l-1 unchanged, so each batch runs one
// clean pass that keeps the stream entering every block, and then for each
// layer only blocks l..n_layers-1: about half the work of a full forward
// pass per layer. Prompts go batchSize at a time; onLayer reports progress
// in (batch, layer) units.
func (m *Model) LayerSweep(prompts [][]int32, vectors [][]float32, batchSize int, reduce func(logits []float32) float64, onLayer func(done, total int)) (base []float64, steered [][]float64, err error) {
	c := &m.Config
	if len(vectors) != c.NumLayers {
		return nil, nil, fmt.Errorf("layer sweep: %d vectors for %d layers", len(vectors), c.NumLayers)
	}
	steered = make([][]float64, c.NumLayers)
	nBatches := (len(prompts) + batchSize - 1) / batchSize
	total, done := 0, 0
	for _, v := range vectors {
		if v != nil {
			total += nBatches
		}
	}
	if onLayer != nil {
		onLayer(0, total)
	}
	for start := 0; start < len(prompts); start += batchSize {
		batch := prompts[start:min(start+batchSize, len(prompts))]
		b, layers, err := m.sweepBatch(batch, vectors, reduce, func() {
			done++
			if onLayer != nil {
				onLayer(done, total)
			}
		})
		if err != nil {
			return nil, nil, err
		}
		base = append(base, b...)
		for l := range layers {
			steered[l] = append(steered[l], layers[l]...)
		}
	}
	return base, steered, nil
}

func (m *Model) sweepBatch(prompts [][]int32, vectors [][]float32, reduce func([]float32) float64, onLayer func()) (base []float64, steered [][]float64, err error) {
	c := &m.Config
	longest := 0
	for _, p := range prompts {
		longest = max(longest, len(p))
	}
	s, err := m.newSession(prompts, bucket(longest, 16), GenerateOptions{streams: true})
	if err != nil {
		return nil, nil, err
	}
	defer s.close()
	B, P, V := len(prompts), s.prefillLen, c.VocabSize
	tokens := make([]int32, B*P)
	positions := make([]int32, B*P)
	valid := make([]float32, B*P)
	for b, p := range prompts {
		copy(tokens[b*P+s.pads[b]:], p)
		for j := range P {
			positions[b*P+j] = int32(j - s.pads[b])
			if j >= s.pads[b] {
				valid[b*P+j] = 1
			}
		}
	}
	logits, _, err := s.step(tokens, P, 0, nil)
	if err != nil {
		return nil, nil, err
	}
	split := func(flat []float32) []float64 {
		out := make([]float64, B)
		for b := range B {
			out[b] = reduce(flat[b*V : (b+1)*V])
		}
		return out
	}
	base = split(logits)
	steered = make([][]float64, c.NumLayers)
	// Suffix passes attend over exactly the prompt slots: the key mask is [B, P].
	common := []any{tensors.FromFlatDataAndDimensions(tokens, B, P), tensors.FromFlatDataAndDimensions(positions, B, P),
		tensors.FromFlatDataAndDimensions(valid, B, P), int32(0), s.streams}
	for l, v := range vectors {
		if v == nil {
			continue
		}
		if len(v) != c.DModel {
			return nil, nil, fmt.Errorf("layer sweep: vector %d has %d values, want %d", l, len(v), c.DModel)
		}
		exec, err := m.auxExec(fmt.Sprintf("suffix_%d", l), m.suffixGraph(l))
		if err != nil {
			return nil, nil, err
		}
		steer := make([]float32, B*c.NumLayers*c.DModel)
		for b := range B {
			copy(steer[(b*c.NumLayers+l)*c.DModel:], v)
		}
		args := make([]any, 0, len(m.weightList)+len(common)+1)
		for _, w := range m.weightList {
			args = append(args, w)
		}
		args = append(args, common...)
		args = append(args, tensors.FromFlatDataAndDimensions(steer, B, c.NumLayers, c.DModel))
		out, err := exec.Call(args...)
		if err != nil {
			return nil, nil, fmt.Errorf("layer sweep, layer %d: %w", l, err)
		}
		flat, err := tensors.CopyFlatData[float32](out[0])
		if err != nil {
			return nil, nil, err
		}
		_ = out[0].FinalizeAll()
		steered[l] = split(flat)
		onLayer()
	}
	return base, steered, nil
}
