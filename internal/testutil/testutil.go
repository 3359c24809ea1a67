// Package testutil holds what the tests of several packages share.
package testutil

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/refusalkit/refusalkit/models"
)

// TinyModel is the tiny random-weight model on the pure-Go backend (weights
// seed 7): fast structural tests.
func TinyModel(t testing.TB) *models.Model {
	t.Helper()
	b, err := models.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	m, err := models.NewTiny(models.TinyConfig(), 7, b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// BundledModel is the bundled model on the default backend, closed when the
// test ends; the test is skipped when the model is not installed (make
// setup-test installs it).
func BundledModel(t testing.TB) *models.Model {
	t.Helper()
	if _, err := models.Resolve(models.DefaultModel); err != nil {
		t.Skipf("bundled model not installed (%v)", err)
	}
	m, err := models.Load(models.DefaultModel, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// ReadJSON decodes the JSON file at path into v, failing the test otherwise.
func ReadJSON(t testing.TB, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// LogSoftmaxAt is log softmax(logits)[id], in float64: an independent check
// of the log-probabilities the model's programs compute in float32.
func LogSoftmaxAt(logits []float32, id int32) float64 {
	top := math.Inf(-1)
	for _, l := range logits {
		top = math.Max(top, float64(l))
	}
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l) - top)
	}
	return float64(logits[id]) - top - math.Log(sum)
}
