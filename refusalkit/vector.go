package refusalkit

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/refusalkit/refusalkit/models"
)

// File names of a saved vector, as the spec names them.
const (
	VectorPTFile          = "refusal_vector.pt"          // for Python: torch.load(path, weights_only=True)
	VectorSafetensorsFile = "refusal_vector.safetensors" // what refusalkit reads back
	vectorTensorName      = "refusal_vector"
)

// RefusalVector is the difference of means at every residual-stream boundary:
// Data[i] = mean over kept refusal responses − mean over kept compliant
// responses of the stream at boundary i, shape [n_layers+1][d_model].
// Boundary 0 is the embedding output, boundary i the stream entering block
// i, and boundary n_layers the final hidden state (after the final norm).
// Rows 0..n_layers-1 can steer: adding Data[i] to the stream entering block
// i; the last row has no block after it to steer.
type RefusalVector struct {
	Data       [][]float32 `json:"-"`
	Model      string      `json:"model"` // model alias
	NLayers    int         `json:"n_layers"`
	DModel     int         `json:"d_model"`
	NRefusal   int         `json:"n_refusal"`
	NCompliant int         `json:"n_compliant"`
}

// ErrTooFewResponses is wrapped by ComputeRefusalVector when a side kept nothing.
var ErrTooFewResponses = fmt.Errorf("too few kept responses to compute a refusal vector")

// ComputeRefusalVector takes the difference of the mean activations of the
// kept refusal and kept compliant responses (each must carry Means).
func ComputeRefusalVector(model string, refusal, compliant []Response) (*RefusalVector, error) {
	ref, nRef := meanOfMeans(refusal)
	comp, nComp := meanOfMeans(compliant)
	if nRef == 0 || nComp == 0 {
		return nil, fmt.Errorf("%w: %d refusal and %d compliant responses with activations", ErrTooFewResponses, nRef, nComp)
	}
	if len(ref) != len(comp) || len(ref[0]) != len(comp[0]) {
		return nil, fmt.Errorf("refusal activations are %dx%d but compliant ones %dx%d", len(ref), len(ref[0]), len(comp), len(comp[0]))
	}
	v := &RefusalVector{Model: model, NLayers: len(ref) - 1, DModel: len(ref[0]), NRefusal: nRef, NCompliant: nComp}
	v.Data = make([][]float32, len(ref))
	for l := range ref {
		v.Data[l] = make([]float32, len(ref[l]))
		for d := range ref[l] {
			v.Data[l][d] = float32(ref[l][d] - comp[l][d])
		}
	}
	return v, nil
}

// MustComputeRefusalVector is ComputeRefusalVector for notebooks.
func MustComputeRefusalVector(model string, refusal, compliant []Response) *RefusalVector {
	v, err := ComputeRefusalVector(model, refusal, compliant)
	if err != nil {
		panic(err)
	}
	return v
}

// meanOfMeans averages the responses' Means in float64 (responses without
// activations are skipped) and returns how many were averaged.
func meanOfMeans(rs []Response) ([][]float64, int) {
	var sum [][]float64
	n := 0
	for _, r := range rs {
		if r.Means == nil {
			continue
		}
		if sum == nil {
			sum = make([][]float64, len(r.Means))
			for l := range sum {
				sum[l] = make([]float64, len(r.Means[l]))
			}
		}
		for l := range r.Means {
			for d, x := range r.Means[l] {
				sum[l][d] += x
			}
		}
		n++
	}
	for l := range sum {
		for d := range sum[l] {
			sum[l][d] /= float64(n)
		}
	}
	return sum, n
}

// Row returns the vector at one boundary.
func (v *RefusalVector) Row(layer int) []float32 { return v.Data[layer] }

// Norms returns the L2 norm of every row.
func (v *RefusalVector) Norms() []float64 {
	out := make([]float64, len(v.Data))
	for l, row := range v.Data {
		var s float64
		for _, x := range row {
			s += float64(x) * float64(x)
		}
		out[l] = math.Sqrt(s)
	}
	return out
}

// Scaled returns c·v.
func (v *RefusalVector) Scaled(c float32) *RefusalVector {
	out := *v
	out.Data = make([][]float32, len(v.Data))
	for l, row := range v.Data {
		out.Data[l] = make([]float32, len(row))
		for d, x := range row {
			out.Data[l][d] = c * x
		}
	}
	return &out
}

// Steering returns the intervention that adds coeff·Data[layer] to the stream entering block layer.
func (v *RefusalVector) Steering(layer int, coeff float32) models.Steering {
	return models.Steering{Layer: layer, Coeff: coeff, Vector: v.Data[layer]}
}

// CheckFits reports whether the vector was made for a model of this shape.
func (v *RefusalVector) CheckFits(c models.Config) error {
	if v.NLayers != c.NumLayers || v.DModel != c.DModel {
		return fmt.Errorf("refusal vector has shape [%d, %d] but model %s needs [%d, %d]: use a vector made with this model (it was made with %q)",
			v.NLayers+1, v.DModel, c.Name, c.NumLayers+1, c.DModel, v.Model)
	}
	return nil
}

func (v *RefusalVector) flat() []float32 {
	out := make([]float32, 0, len(v.Data)*v.DModel)
	for _, row := range v.Data {
		out = append(out, row...)
	}
	return out
}

// Save writes refusal_vector.pt and refusal_vector.safetensors into dir, atomically.
func (v *RefusalVector) Save(dir string) error {
	shape := []int{len(v.Data), v.DModel}
	data := v.flat()
	if err := WriteFileAtomic(filepath.Join(dir, VectorPTFile), func(w io.Writer) error {
		return WritePT(w, data, shape)
	}); err != nil {
		return err
	}
	meta := map[string]string{"model": v.Model, "n_layers": strconv.Itoa(v.NLayers), "d_model": strconv.Itoa(v.DModel),
		"n_refusal": strconv.Itoa(v.NRefusal), "n_compliant": strconv.Itoa(v.NCompliant),
		"rows": "row 0 = embedding output; row i = residual stream entering block i; last row = final hidden state after the final norm"}
	return WriteFileAtomic(filepath.Join(dir, VectorSafetensorsFile), func(w io.Writer) error {
		return WriteSafetensors(w, map[string]Float32Tensor{vectorTensorName: {Shape: shape, Data: data}}, meta)
	})
}

// LoadRefusalVector reads refusal_vector.safetensors from a vector folder
// (refusalkit never unpickles the .pt file).
func LoadRefusalVector(dir string) (*RefusalVector, error) {
	path := filepath.Join(dir, VectorSafetensorsFile)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no refusal vector at %s: give the folder written by `refusalkit extract` (--vector_dir)", path)
	}
	ts, meta, err := ReadSafetensors(path)
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
	v := &RefusalVector{Model: meta["model"], NLayers: t.Shape[0] - 1, DModel: t.Shape[1]}
	v.NRefusal, _ = strconv.Atoi(meta["n_refusal"])
	v.NCompliant, _ = strconv.Atoi(meta["n_compliant"])
	v.Data = make([][]float32, t.Shape[0])
	for l := range v.Data {
		v.Data[l] = t.Data[l*v.DModel : (l+1)*v.DModel]
	}
	return v, nil
}

// MustLoadRefusalVector is LoadRefusalVector for notebooks.
func MustLoadRefusalVector(dir string) *RefusalVector {
	v, err := LoadRefusalVector(dir)
	if err != nil {
		panic(err)
	}
	return v
}
