package runs

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/tensorfile"
)

const vectorTensorName = "refusal_vector"

// SaveVector writes refusal_vector.pt and refusal_vector.safetensors into dir, atomically.
func SaveVector(dir string, v *refusalkit.RefusalVector) error {
	shape := []int{len(v.Data), v.DModel}
	data := v.Flat()
	if err := tensorfile.WriteFileAtomic(filepath.Join(dir, VectorPTFile), func(w io.Writer) error {
		return tensorfile.WritePT(w, data, shape)
	}); err != nil {
		return err
	}
	meta := map[string]string{"model": v.Model, "n_layers": strconv.Itoa(v.NLayers), "d_model": strconv.Itoa(v.DModel),
		"n_refusal": strconv.Itoa(v.NRefusal), "n_compliant": strconv.Itoa(v.NCompliant),
		"rows": "row l = layer l: 0 = embedding output; l = residual stream entering block l; n_layers = final hidden state after the final norm"}
	return tensorfile.WriteFileAtomic(filepath.Join(dir, VectorSafetensorsFile), func(w io.Writer) error {
		return tensorfile.WriteSafetensors(w, map[string]tensorfile.Float32Tensor{vectorTensorName: {Shape: shape, Data: data}}, meta)
	})
}

// LoadVector reads refusal_vector.safetensors from a run folder
// (refusalkit never unpickles the .pt file).
func LoadVector(dir string) (*refusalkit.RefusalVector, error) {
	path := filepath.Join(dir, VectorSafetensorsFile)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no refusal vector at %s: give the folder written by `refusalkit extract` (--vector_dir)", path)
	}
	ts, meta, err := tensorfile.ReadSafetensors(path)
	if err != nil {
		return nil, fmt.Errorf("refusal vector %s is unreadable (%v): re-run `refusalkit extract`", path, err)
	}
	t, ok := ts[vectorTensorName]
	if !ok || len(t.Shape) != 2 || t.Shape[0] < 2 || t.Shape[1] < 1 {
		return nil, fmt.Errorf("refusal vector %s has no 2-D %q tensor: re-run `refusalkit extract`", path, vectorTensorName)
	}
	for _, x := range t.Data {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("refusal vector %s holds NaN or infinite values: re-run `refusalkit extract`", path)
		}
	}
	v := &refusalkit.RefusalVector{Model: meta["model"], NLayers: t.Shape[0] - 1, DModel: t.Shape[1]}
	v.NRefusal, _ = strconv.Atoi(meta["n_refusal"])
	v.NCompliant, _ = strconv.Atoi(meta["n_compliant"])
	v.Data = make([][]float32, t.Shape[0])
	for l := range v.Data {
		v.Data[l] = t.Data[l*v.DModel : (l+1)*v.DModel]
	}
	return v, nil
}

// MustLoadVector is LoadVector for notebooks.
func MustLoadVector(dir string) *refusalkit.RefusalVector {
	v, err := LoadVector(dir)
	if err != nil {
		panic(err)
	}
	return v
}
