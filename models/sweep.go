package models

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/core/tensors"
)

// sweepChunk is how many layers share one suffix program in LayerSweep.
const sweepChunk = 6

// LayerSweep returns, for each prompt, reduce(last-position logits) without
// steering (base) and, for every layer l with vectors[l] set, with
// vectors[l] added to the residual stream entering block l at every
// position (steered[l]). reduce (e.g. a refusal score) runs as each batch
// comes back, so no [layers, prompts, vocab] logits are ever held.
//
// Steering at block l leaves blocks 0..l-1 unchanged, so each batch runs one
// clean pass that keeps the stream entering every block, and then runs only
// the blocks from each layer on (grouped sweepChunk layers per program):
// about 60% of the work of a full forward pass per layer. Prompts go batchSize at a time; onLayer reports progress
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
	s, err := m.newSession(prompts, bucket(longest, promptBucket), GenerateOptions{streams: true})
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
	var layers []int
	for l, v := range vectors {
		if v == nil {
			continue
		}
		if len(v) != c.DModel {
			return nil, nil, fmt.Errorf("layer sweep: vector %d has %d values, want %d", l, len(v), c.DModel)
		}
		layers = append(layers, l)
	}
	// Layers go sweepChunk at a time through one suffix program that starts
	// at the chunk's first layer, each layer on its own copy of the batch:
	// a few compiled programs instead of one per layer, for a little more
	// arithmetic (the chunk's later layers also run its first blocks).
	for len(layers) > 0 {
		chunk := layers[:min(sweepChunk, len(layers))]
		layers = layers[len(chunk):]
		K := len(chunk)
		tile := func(x []int32) []int32 { return slices.Repeat(x, K) }
		steer := make([]float32, K*B*c.NumLayers*c.DModel)
		for j, l := range chunk {
			for b := range B {
				copy(steer[((j*B+b)*c.NumLayers+l)*c.DModel:], vectors[l])
			}
		}
		exec, err := m.program(fmt.Sprintf("suffix_%d", chunk[0]), m.suffixGraph(chunk[0]),
			programIO{weights: true, in: suffixInputNames, out: []string{outLogits}})
		if err != nil {
			return nil, nil, err
		}
		// Suffix passes attend over exactly the prompt slots: the key mask is [K·B, P].
		named, err := inOrder(suffixInputNames, map[string]any{
			inTokens:    tensors.FromFlatDataAndDimensions(tile(tokens), K*B, P),
			inPositions: tensors.FromFlatDataAndDimensions(tile(positions), K*B, P),
			inKeyValid:  tensors.FromFlatDataAndDimensions(slices.Repeat(valid, K), K*B, P),
			inOffset:    int32(0),
			inSteer:     tensors.FromFlatDataAndDimensions(steer, K*B, c.NumLayers, c.DModel),
			inStreams:   s.streams,
		})
		if err != nil {
			return nil, nil, err
		}
		m.countPass(s.pads, P, K)
		out, err := m.call(exec, true, named)
		if err != nil {
			return nil, nil, fmt.Errorf("layer sweep, layers %v: %w", chunk, err)
		}
		trimCHeap() // each chunk's program may just have been compiled
		lt := out[0].host()
		flat, err := m.copyToHost(lt)
		if err != nil {
			return nil, nil, err
		}
		_ = lt.FinalizeAll()
		for j, l := range chunk {
			steered[l] = split(flat[j*B*V : (j+1)*B*V])
			onLayer()
		}
	}
	return base, steered, nil
}
