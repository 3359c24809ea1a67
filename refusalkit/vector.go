package refusalkit

import (
	"fmt"
	"math"

	"github.com/refusalkit/refusalkit/models"
)

// RefusalVector is the difference of means at every layer: Data[l] = mean
// over kept refusal responses − mean over kept compliant responses of layer
// l, shape [n_layers+1][d_model]. Layer l is the residual stream entering
// block l (layer 0 is the embedding output) and layer n_layers the final
// hidden state after the final norm, as transformers' hidden_states[l].
// Layers 0..n_layers-1 can steer, by adding Data[l] to the stream entering
// block l; the last has no block after it to steer.
type RefusalVector struct {
	Data       [][]float32 `json:"-"`
	Model      string      `json:"model"` // model alias
	NLayers    int         `json:"n_layers"`
	DModel     int         `json:"d_model"`
	NRefusal   int         `json:"n_refusal"`
	NCompliant int         `json:"n_compliant"`
	// Rows, when set, lists the only rows that hold a direction (a vector
	// imported from a llama.cpp control vector); the others are zero and are
	// no candidates for layer selection. nil: every row.
	Rows []int `json:"rows,omitempty"`
	// Provenance is how the vector was made, as its file records it (model,
	// method, counts, instruction, seed, sign, operation; see
	// runs.SaveVector); nil for a vector made in memory.
	Provenance map[string]string `json:"-"`
}

// ErrTooFewResponses is wrapped by ComputeRefusalVector when a side kept nothing.
var ErrTooFewResponses = fmt.Errorf("too few kept responses to compute a refusal vector")

// ComputeRefusalVector takes the difference of the mean activations of the
// kept refusal and kept compliant responses (each must carry Means).
func ComputeRefusalVector(model string, refusal, compliant []Response) (*RefusalVector, error) {
	return VectorFromSums(model, SumActivations(refusal), SumActivations(compliant))
}

// VectorFromSums is the difference of the means the sums make: refusal
// minus compliant, per layer, rounded to float32.
func VectorFromSums(model string, refusal, compliant Sums) (*RefusalVector, error) {
	if refusal.N == 0 || compliant.N == 0 {
		return nil, fmt.Errorf("%w: %d refusal and %d compliant responses with activations", ErrTooFewResponses, refusal.N, compliant.N)
	}
	ref, comp := refusal.Mean(), compliant.Mean()
	if len(ref) != len(comp) || len(ref[0]) != len(comp[0]) {
		return nil, fmt.Errorf("refusal activations are %dx%d but compliant ones %dx%d", len(ref), len(ref[0]), len(comp), len(comp[0]))
	}
	v := &RefusalVector{Model: model, NLayers: len(ref) - 1, DModel: len(ref[0]), NRefusal: refusal.N, NCompliant: compliant.N}
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

// Layer returns the vector at one layer.
func (v *RefusalVector) Layer(l int) []float32 { return v.Data[l] }

// Norms returns the L2 norm of the vector at every layer.
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

// Flat returns the vector as one [n_layers+1 × d_model] slice, layer by layer.
func (v *RefusalVector) Flat() []float32 {
	out := make([]float32, 0, len(v.Data)*v.DModel)
	for _, row := range v.Data {
		out = append(out, row...)
	}
	return out
}
