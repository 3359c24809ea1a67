// Package ggufvec reads and writes llama.cpp control vectors: GGUF files with
// general.architecture = "controlvector", the keys controlvector.model_hint and
// controlvector.layer_count, and one float32 tensor direction.N per llama.cpp
// layer N (what llama.cpp's cvector-generator and repeng write, and what
// llama-cli's --control-vector and --control-vector-scaled read).
//
// The format only: which refusalkit row a direction is (the convention of the
// file) lives in refusalkit (controlvector.go). llama.cpp adds direction.N to
// the output of block N (src/models/*.cpp: build_cvec after the block's second
// residual add), for N in 1..n_layer-1; index 0 has no slot
// (llama_adapter_cvec::init).
//
// Reading uses go-huggingface's GGUF parser (the one the model loader uses).
// Writing is done here: go-huggingface's gguf package only reads, and no
// maintained Go module writes GGUF; a control vector needs only string and
// int32 keys and 1-D float32 tensors, so the writer covers exactly that.
package ggufvec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/gomlx/go-huggingface/models/gguf"
)

// Architecture is the general.architecture of a control vector.
const Architecture = "controlvector"

// Keys llama.cpp's cvector-generator writes (export_gguf) and repeng reads.
const (
	KeyArchitecture = "general.architecture"
	KeyModelHint    = Architecture + ".model_hint"
	KeyLayerCount   = Architecture + ".layer_count"
)

// alignment is GGUF's default tensor-data alignment (GGUF_DEFAULT_ALIGNMENT).
const alignment = 32

// GGUF value and tensor type codes (ggml/include/gguf.h, ggml.h).
const (
	typeInt32  = 5
	typeString = 8
	tensorF32  = 0
)

// ControlVector is one control-vector file.
type ControlVector struct {
	// ModelHint is controlvector.model_hint: llama.cpp's cvector-generator
	// writes the model's general.architecture (e.g. "llama"); llama.cpp does
	// not check it.
	ModelHint string
	// LayerCount is controlvector.layer_count. cvector-generator writes the
	// number of directions (n_layer-1); llama.cpp does not read it.
	LayerCount int
	// NEmbd is the length of every direction.
	NEmbd int
	// Directions maps llama.cpp layer index N (≥ 1) to direction.N, [NEmbd].
	Directions map[int][]float32
	// Strings holds further string keys (refusalkit writes its provenance
	// under "refusalkit."); llama.cpp ignores keys it does not know.
	Strings map[string]string
}

// Indices returns the direction indices in increasing order.
func (cv *ControlVector) Indices() []int {
	out := make([]int, 0, len(cv.Directions))
	for n := range cv.Directions {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

// Validate checks what llama.cpp's loader (common_control_vector_load_one)
// would refuse, and non-finite values, which it would apply.
func (cv *ControlVector) Validate() error {
	if len(cv.Directions) == 0 {
		return fmt.Errorf("control vector has no direction tensors")
	}
	for _, n := range cv.Indices() {
		d := cv.Directions[n]
		if n < 1 {
			return fmt.Errorf("direction.%d: llama.cpp has no layer %d to add it to (indices start at 1)", n, n)
		}
		if len(d) != cv.NEmbd || cv.NEmbd < 1 {
			return fmt.Errorf("direction.%d has %d values but the vector's n_embd is %d", n, len(d), cv.NEmbd)
		}
		for _, x := range d {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("direction.%d holds NaN or infinite values", n)
			}
		}
	}
	return nil
}

// Write writes cv as GGUF version 3, keys in a fixed order (architecture,
// model hint, layer count, then Strings sorted) and tensors by index.
func Write(w io.Writer, cv *ControlVector) error {
	if err := cv.Validate(); err != nil {
		return err
	}
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	str := func(s string) { le(uint64(len(s))); b.WriteString(s) }
	keys := make([]string, 0, len(cv.Strings))
	for k := range cv.Strings {
		if k == KeyArchitecture || k == KeyModelHint || k == KeyLayerCount {
			return fmt.Errorf("string key %q is written from the vector's own fields", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	idx := cv.Indices()

	b.WriteString("GGUF")
	le(uint32(3))
	le(uint64(len(idx)))
	le(uint64(3 + len(keys)))
	str(KeyArchitecture)
	le(uint32(typeString))
	str(Architecture)
	str(KeyModelHint)
	le(uint32(typeString))
	str(cv.ModelHint)
	str(KeyLayerCount)
	le(uint32(typeInt32))
	le(int32(cv.LayerCount))
	for _, k := range keys {
		str(k)
		le(uint32(typeString))
		str(cv.Strings[k])
	}
	tensorBytes := uint64(4 * cv.NEmbd)
	stride := (tensorBytes + alignment - 1) / alignment * alignment
	for i, n := range idx {
		str("direction." + strconv.Itoa(n))
		le(uint32(1))          // n_dims
		le(uint64(cv.NEmbd))   // ne[0]
		le(uint32(tensorF32))  // type
		le(uint64(i) * stride) // offset within the data section
	}
	b.Write(make([]byte, (alignment-b.Len()%alignment)%alignment))
	for _, n := range idx {
		le(cv.Directions[n])
		b.Write(make([]byte, stride-tensorBytes))
	}
	_, err := w.Write(b.Bytes())
	return err
}

// Read reads a control-vector GGUF file, refusing anything llama.cpp would
// refuse or read differently: another architecture, a tensor not named
// direction.N with N ≥ 1, a tensor that is not 1-D float32, directions of
// different lengths, non-finite values.
func Read(path string) (*ControlVector, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no control vector at %s", path)
	}
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s is not a readable GGUF file (%v)", path, err)
	}
	arch := f.Architecture()
	if arch != Architecture {
		return nil, fmt.Errorf("%s is a GGUF file with general.architecture %q, not a control vector (%q)", path, arch, Architecture)
	}
	cv := &ControlVector{Directions: map[int][]float32{}, Strings: map[string]string{}, NEmbd: -1}
	for _, kv := range f.KeyValues {
		switch kv.Key {
		case KeyArchitecture, "general.alignment":
		case KeyModelHint:
			cv.ModelHint = kv.Value.String()
		case KeyLayerCount:
			cv.LayerCount = int(kv.Value.Int64())
		default:
			if s, ok := kv.Value.Raw().(string); ok {
				cv.Strings[kv.Key] = s
			}
		}
	}
	r, err := gguf.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	defer r.Close()
	for _, ti := range f.TensorInfos {
		n, ok := directionIndex(ti.Name)
		if !ok {
			return nil, fmt.Errorf("%s: tensor %q is not named direction.N (llama.cpp refuses the file)", path, ti.Name)
		}
		if ti.Type != gguf.TensorTypeF32 || len(ti.Shape) != 1 {
			return nil, fmt.Errorf("%s: %s is not a 1-D float32 tensor (type %v, shape %v; llama.cpp refuses the file)", path, ti.Name, ti.Type, ti.Shape)
		}
		if cv.NEmbd == -1 {
			cv.NEmbd = int(ti.Shape[0])
		} else if int(ti.Shape[0]) != cv.NEmbd {
			return nil, fmt.Errorf("%s: %s has %d values but the first direction has %d", path, ti.Name, ti.Shape[0], cv.NEmbd)
		}
		if _, dup := cv.Directions[n]; dup {
			return nil, fmt.Errorf("%s: direction.%d appears twice", path, n)
		}
		raw, _, err := r.ReadTensorRaw(ti.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		d := make([]float32, cv.NEmbd)
		for i := range d {
			d[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		cv.Directions[n] = d
	}
	if err := cv.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return cv, nil
}

// directionIndex parses "direction.N" strictly (decimal digits only). Index 0
// parses, for Validate to refuse with its reason.
func directionIndex(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "direction.")
	if !ok || s == "" || len(s) > 6 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}
