package models

import (
	"fmt"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/compute/dtypes/float16"
	"github.com/gomlx/gomlx/core/tensors"
)

// DTypes are the activation and weight types a model can be loaded in, by
// their --dtype names.
var DTypes = map[string]dtypes.DType{
	"float32": dtypes.Float32, "bfloat16": dtypes.BFloat16, "float16": dtypes.Float16,
}

// ParseDType reads a --dtype value: float32, bfloat16 or float16 ("" is
// the default of the backend, returned as dtypes.InvalidDType).
func ParseDType(name string) (dtypes.DType, error) {
	if name == "" {
		return dtypes.InvalidDType, nil
	}
	if dt, ok := DTypes[strings.ToLower(name)]; ok {
		return dt, nil
	}
	return dtypes.InvalidDType, fmt.Errorf("unknown dtype %q: use float32, bfloat16 or float16", name)
}

// DTypeName is the --dtype name of a dtype (float32, bfloat16, float16).
func DTypeName(dt dtypes.DType) string {
	for n, d := range DTypes {
		if d == dt {
			return n
		}
	}
	return dt.String()
}

// DefaultDType is the dtype a model loads in when none is asked for:
// bfloat16 on a CUDA backend (BackendName; as researchers run PyTorch there), float32
// elsewhere: on CPU bfloat16 is slower at batch 1 and at most 1.25× faster
// at larger batches, on some CPUs only (see docs/precision.md), and a CPU
// run is where numbers are checked against a float32 reference.
func DefaultDType(b compute.Backend) dtypes.DType {
	if strings.Contains(BackendName(b), "cuda") {
		return dtypes.BFloat16
	}
	return dtypes.Float32
}

// actDType is the dtype of the model's weights, activations and KV cache.
func (c *Config) actDType() dtypes.DType {
	if c.dtype == dtypes.InvalidDType {
		return dtypes.Float32
	}
	return c.dtype
}

// DType is the dtype the model was loaded in: its weights (norm weights
// stay float32), activations and KV cache.
func (m *Model) DType() dtypes.DType { return m.Config.actDType() }

// float32Data copies a float32, bfloat16 or float16 host tensor out as float32.
func float32Data(t *tensors.Tensor) ([]float32, error) {
	switch t.DType() {
	case dtypes.Float32:
		return tensors.CopyFlatData[float32](t)
	case dtypes.BFloat16:
		out := make([]float32, t.Shape().Size())
		err := tensors.ConstFlatData(t, func(flat []bfloat16.BFloat16) {
			for i, v := range flat {
				out[i] = v.Float32()
			}
		})
		return out, err
	case dtypes.Float16:
		out := make([]float32, t.Shape().Size())
		err := tensors.ConstFlatData(t, func(flat []float16.Float16) {
			for i, v := range flat {
				out[i] = v.Float32()
			}
		})
		return out, err
	}
	return nil, fmt.Errorf("tensor of dtype %s: want float32, bfloat16 or float16", t.DType())
}

// fromFloat32Data makes a host tensor of dtype dt from float32 values,
// rounding to nearest even.
func fromFloat32Data(data []float32, dt dtypes.DType, dims ...int) (*tensors.Tensor, error) {
	switch dt {
	case dtypes.Float32:
		return tensors.FromFlatDataAndDimensions(data, dims...), nil
	case dtypes.BFloat16:
		out := make([]bfloat16.BFloat16, len(data))
		for i, v := range data {
			out[i] = bfloat16.FromFloat32(v)
		}
		return tensors.FromFlatDataAndDimensions(out, dims...), nil
	case dtypes.Float16:
		out := make([]float16.Float16, len(data))
		for i, v := range data {
			out[i] = float16.FromFloat32(v)
		}
		return tensors.FromFlatDataAndDimensions(out, dims...), nil
	}
	return nil, fmt.Errorf("dtype %s: want float32, bfloat16 or float16", dt)
}

// toDType converts a host tensor to dt (itself when it already is).
func toDType(t *tensors.Tensor, dt dtypes.DType) (*tensors.Tensor, error) {
	if t.DType() == dt {
		return t, nil
	}
	data, err := float32Data(t)
	if err != nil {
		return nil, err
	}
	out, err := fromFloat32Data(data, dt, t.Shape().Dimensions...)
	if err == nil {
		t.FinalizeAll()
	}
	return out, err
}
