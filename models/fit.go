package models

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/go-huggingface/models/gguf"
)

// tensorTable is a checkpoint's tensors as their element counts; vectors
// (norm weights, biases) are told apart since norm weights stay float32.
type tensorTable struct {
	matrices, vectors []int64 // element counts
}

// weightBytes estimates the device memory of the weights in dt and the
// most the loading holds on the host besides: the largest tensor as
// float32 (a dequantised GGUF tensor) plus its converted copy.
func (t tensorTable) weightBytes(dt dtypes.DType) (weights, transient int64) {
	size := int64(dt.Size())
	var largest int64
	for _, n := range t.matrices {
		weights += n * size
		largest = max(largest, n)
	}
	for _, n := range t.vectors {
		weights += 4 * n
	}
	return weights, largest * (4 + size)
}

// checkpointTable reads the tensor table of what Load would read, without
// reading any weight: the config for a random model, the GGUF tensor
// infos, the safetensors headers.
func checkpointTable(src string) (tensorTable, error) {
	var t tensorTable
	add := func(dims []int) {
		n := int64(1)
		for _, d := range dims {
			n *= int64(d)
		}
		if len(dims) >= 2 {
			t.matrices = append(t.matrices, n)
		} else {
			t.vectors = append(t.vectors, n)
		}
	}
	var cfg Config
	switch shape, random := strings.CutPrefix(src, "random:"); {
	case src == TinyRandomModel:
		cfg = TinyConfig()
	case random:
		cfg = RandomShapes[shape]
	}
	if cfg.NumLayers > 0 {
		if err := cfg.validate(); err != nil {
			return t, err
		}
		var p Params[struct{}]
		p.visit(&cfg, func(s weightSpec, _ *struct{}) { add(s.shape) })
		return t, nil
	}
	if st, err := os.Stat(src); err == nil && st.IsDir() {
		files, _ := filepath.Glob(filepath.Join(src, "*.safetensors"))
		for _, f := range files {
			header, err := safetensorsHeader(f)
			if err != nil {
				return t, fmt.Errorf("model folder %s: %s: %v", src, filepath.Base(f), err)
			}
			for name, e := range header {
				if name == "__metadata__" || strings.Contains(name, "vision_tower.") || strings.Contains(name, "multi_modal_projector.") {
					continue
				}
				add(e.Shape)
			}
		}
		return t, nil
	}
	f, err := gguf.Open(src)
	if err != nil {
		return t, fmt.Errorf("corrupt or truncated GGUF %s (%v): re-download the file", src, err)
	}
	for _, ti := range f.TensorInfos {
		_, dims := ti.GoMLXShape()
		add(dims)
	}
	return t, nil
}

// safetensorsHeader reads the JSON header of a .safetensors file.
func safetensorsHeader(path string) (map[string]struct {
	Shape []int `json:"shape"`
}, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return nil, fmt.Errorf("no header: %v", err)
	}
	if n > 100<<20 {
		return nil, fmt.Errorf("header of %d bytes: not a safetensors file", n)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("truncated header: %v", err)
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("header: %v", err)
	}
	out := map[string]struct {
		Shape []int `json:"shape"`
	}{}
	for name, raw := range h {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			Shape []int `json:"shape"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("header entry %s: %v", name, err)
		}
		out[name] = e
	}
	return out, nil
}

// onCPU reports whether a backend keeps its buffers in host memory.
func onCPU(b compute.Backend) bool {
	n := strings.ToLower(BackendName(b))
	return !strings.Contains(n, "cuda") && !strings.Contains(n, "gpu") && !strings.Contains(n, "tpu")
}

// checkFits refuses, before anything is loaded, a model whose weights in
// dt do not fit the memory available: limit when > 0, else MemAvailable on
// a CPU backend (a device backend's memory is not known here: no check).
func checkFits(src, modelPath string, backend compute.Backend, dt dtypes.DType, limit int64) error {
	if limit <= 0 {
		if !onCPU(backend) {
			return nil
		}
		if limit = memAvailable(); limit <= 0 {
			return nil
		}
	}
	t, err := checkpointTable(src)
	if err != nil {
		return err
	}
	need := func(d dtypes.DType) int64 { w, tr := t.weightBytes(d); return w + tr }
	if need(dt) <= limit {
		return nil
	}
	hint := "no dtype fits: use a machine with more memory or a smaller model"
	for _, alt := range []dtypes.DType{dtypes.BFloat16, dtypes.Float16} {
		if alt.Size() < dt.Size() && need(alt) <= limit {
			hint = fmt.Sprintf("in %s it needs %s: use --dtype %s", DTypeName(alt), gib(need(alt)), DTypeName(alt))
			break
		}
	}
	return fmt.Errorf("model %s does not fit: its weights in %s need %s and %s is available; %s",
		modelPath, DTypeName(dt), gib(need(dt)), gib(limit), hint)
}

func gib(n int64) string { return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30)) }
