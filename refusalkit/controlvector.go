package refusalkit

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/refusalkit/refusalkit/refusalkit/ggufvec"
)

// llama.cpp's control-vector convention, read in its source (the llama-cpp-python
// 0.3.36 sdist's vendor/llama.cpp): every model graph ends block il with
//
//	cur = ggml_add(ctx0, cur, ffn_inp)   // the block's second residual add
//	cur = build_cvec(cur, il)            // + direction.il, when il is in range
//	cb(cur, "l_out", il)
//
// (src/models/llama.cpp and the other architectures), and llama_adapter_cvec
// holds a tensor for il = 1..n_layer-1 only ("there's never a tensor for layer
// 0"; common_control_vector_load refuses direction.0). So direction.N is added to
// the output of block N, which is the stream entering block N+1: refusalkit row
// N+1. Hence:
//
//	refusalkit row r (2 ≤ r ≤ n_layers-1)  ↔  llama.cpp direction.(r-1)
//
// and these rows have no llama.cpp slot:
//
//	row 0         the embedding output (entering block 0): nothing is added before block 0
//	row 1         the output of block 0: llama.cpp never adds after block 0
//	row n_layers  the final hidden state after the final norm: llama.cpp adds
//	              only between blocks; its direction.(n_layers-1), added to the
//	              last block's output before the norm, has no refusalkit row.
//
// make interop-check verifies the mapping numerically against llama.cpp itself,
// and that a shifted mapping fails.

// LlamaCppIndex returns the llama.cpp control-vector index (direction.N) at which
// row r of a vector for a model of nLayers blocks is added, or an error naming
// why the row has no slot and which rows do.
func LlamaCppIndex(r, nLayers int) (int, error) {
	rows := fmt.Sprintf("rows 2..%d can be exported", nLayers-1)
	switch {
	case nLayers < 3:
		return 0, fmt.Errorf("a model of %d blocks has no row llama.cpp can steer (it needs rows 2..n_layers-1)", nLayers)
	case r < 0 || r > nLayers:
		return 0, fmt.Errorf("row %d is out of range: the vector has rows 0..%d; %s", r, nLayers, rows)
	case r == 0:
		return 0, fmt.Errorf("row 0 (the embedding output, entering block 0) has no llama.cpp control-vector slot: llama.cpp adds direction.N after block N, N ≥ 1; %s", rows)
	case r == 1:
		return 0, fmt.Errorf("row 1 (the output of block 0) has no llama.cpp control-vector slot: llama.cpp never adds after block 0 (it refuses direction.0); %s", rows)
	case r == nLayers:
		return 0, fmt.Errorf("row %d is the final hidden state after the final norm: llama.cpp adds control vectors only between blocks; %s", r, rows)
	}
	return r - 1, nil
}

// RowOfLlamaCppIndex is the inverse of LlamaCppIndex: the refusalkit row that
// direction.n is, or an error when it has none.
func RowOfLlamaCppIndex(n, nLayers int) (int, error) {
	switch {
	case n < 1 || n > nLayers-1:
		return 0, fmt.Errorf("direction.%d is out of range for a model of %d blocks: llama.cpp adds direction.N for N in 1..%d (it would ignore this one)", n, nLayers, nLayers-1)
	case n == nLayers-1:
		return 0, fmt.Errorf("direction.%d is added to the last block's output, before the final norm, where refusalkit has no row (row %d is after the norm)", n, nLayers)
	}
	return n + 1, nil
}

// RowConvention is the row convention every refusalkit vector file states.
const RowConvention = "row i = residual stream entering block i (row 0 = the embedding output); row n_layers = final hidden state after the final norm"

// ToControlVector returns coeff × rows of v as a llama.cpp control vector, each
// row r at direction.(r-1) (LlamaCppIndex), with the vector's provenance and the
// mapping under refusalkit.* keys. modelHint is controlvector.model_hint.
func (v *RefusalVector) ToControlVector(rows []int, coeff float32, modelHint string) (*ggufvec.ControlVector, error) {
	if len(rows) == 0 {
		return nil, fmt.Errorf("no rows to export")
	}
	cv := &ggufvec.ControlVector{ModelHint: modelHint, NEmbd: v.DModel, Directions: map[int][]float32{},
		Strings: map[string]string{}}
	for _, r := range rows {
		n, err := LlamaCppIndex(r, v.NLayers)
		if err != nil {
			return nil, err
		}
		d := make([]float32, v.DModel)
		for i, x := range v.Data[r] {
			d[i] = coeff * x
		}
		cv.Directions[n] = d
	}
	// cvector-generator writes the number of directions a full file holds:
	// one per block after the first.
	cv.LayerCount = v.NLayers - 1
	for k, val := range v.Provenance {
		cv.Strings["refusalkit."+k] = val
	}
	strs := make([]string, len(rows))
	for i, r := range rows {
		strs[i] = strconv.Itoa(r)
	}
	cv.Strings["refusalkit.model"] = v.Model
	cv.Strings["refusalkit.exported_rows"] = strings.Join(strs, ",")
	cv.Strings["refusalkit.coefficient"] = strconv.FormatFloat(float64(coeff), 'g', -1, 32)
	cv.Strings["refusalkit.mapping"] = "direction.N = coefficient × refusalkit row N+1: llama.cpp adds direction.N to the output of block N, the residual stream entering block N+1"
	return cv, nil
}

// FromControlVector reads a llama.cpp control vector as a refusalkit vector for a
// model of nLayers blocks and width dModel: direction.N becomes row N+1 (the
// reverse of ToControlVector), every other row is zero. A direction that has no
// row (RowOfLlamaCppIndex) is an error, except direction.(nLayers-1), which
// cvector-generator always writes: it is left out and its index returned, for
// the caller to say so. Rows lists the rows that hold a direction.
func FromControlVector(cv *ggufvec.ControlVector, model string, nLayers, dModel int) (v *RefusalVector, dropped []int, err error) {
	if cv.NEmbd != dModel {
		return nil, nil, fmt.Errorf("the control vector's directions have %d values but model %s has d_model %d: use a control vector made for this model (its model_hint is %q)", cv.NEmbd, model, dModel, cv.ModelHint)
	}
	v = &RefusalVector{Model: model, NLayers: nLayers, DModel: dModel, Data: make([][]float32, nLayers+1),
		Provenance: map[string]string{}}
	for l := range v.Data {
		v.Data[l] = make([]float32, dModel)
	}
	for _, n := range cv.Indices() {
		r, err := RowOfLlamaCppIndex(n, nLayers)
		if err != nil {
			if n == nLayers-1 {
				dropped = append(dropped, n)
				continue
			}
			return nil, nil, err
		}
		copy(v.Data[r], cv.Directions[n])
		v.Rows = append(v.Rows, r)
	}
	if len(v.Rows) == 0 {
		return nil, nil, fmt.Errorf("the control vector has no direction refusalkit can steer with (it holds only direction.%d, after the last block)", nLayers-1)
	}
	for k, val := range cv.Strings {
		if rest, ok := strings.CutPrefix(k, "refusalkit."); ok {
			v.Provenance["source."+rest] = val
		}
	}
	v.Provenance["method"] = "imported from a llama.cpp control vector (direction.N → row N+1)"
	v.Provenance["model_hint"] = cv.ModelHint
	return v, dropped, nil
}
