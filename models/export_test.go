package models

import (
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
)

func copyFlat(t *tensors.Tensor) ([]float32, error) { return tensors.CopyFlatData[float32](t) }

// setFlat replaces the embedding matrix of m (tests only).
func setFlat(t *testing.T, m *Model, data []float32) {
	t.Helper()
	c := &m.Config
	m.weights.Embed = tensors.FromFlatDataAndDimensions(data, c.VocabSize, c.DModel)
	m.weightList = m.weights.flat(c)
	if err := m.weights.Embed.ToDevice(m.Backend, 0); err != nil {
		t.Fatal(err)
	}
}
