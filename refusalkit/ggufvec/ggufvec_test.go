package ggufvec

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func sample() *ControlVector {
	return &ControlVector{ModelHint: "llama", LayerCount: 3, NEmbd: 5,
		Directions: map[int][]float32{1: {1, -2, 3.5, 0, 1e-7}, 3: {-0.25, 0.5, 7, 8, -9}},
		Strings:    map[string]string{"refusalkit.source_row": "4"}}
}

func writeTemp(t *testing.T, cv *ControlVector) string {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, cv); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cv.gguf")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The writer's output reads back exactly through go-huggingface's GGUF parser.
func TestRoundTrip(t *testing.T) {
	want := sample()
	got, err := Read(writeTemp(t, want))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back %+v, want %+v", got, want)
	}
}

// The gguf Python package (llama.cpp's own gguf-py, what repeng uses) reads
// the same keys, names, shapes and values.
func TestReadByPythonGGUF(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	py := filepath.Join(filepath.Dir(file), "..", "..", ".cache", "pyref", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		t.Skipf("reference venv absent (%s): run tools/setup/pyref.sh", py)
	}
	if err := exec.Command(py, "-c", "import gguf").Run(); err != nil {
		t.Skip("the reference venv has no gguf package")
	}
	path := writeTemp(t, sample())
	script := `
import sys, json, gguf
r = gguf.GGUFReader(sys.argv[1])
kv = {}
for k, f in r.fields.items():
    if k.startswith("GGUF."): continue
    v = f.contents()
    kv[k] = v
ts = {t.name: [float(x) for x in t.data.tolist()] for t in r.tensors}
shapes = {t.name: [int(x) for x in t.shape] for t in r.tensors}
types = {t.name: t.tensor_type.name for t in r.tensors}
print(json.dumps({"kv": kv, "tensors": ts, "shapes": shapes, "types": types}))
`
	out, err := exec.Command(py, "-c", script, path).CombinedOutput()
	if err != nil {
		t.Fatalf("gguf.GGUFReader: %v\n%s", err, out)
	}
	var got struct {
		KV      map[string]any       `json:"kv"`
		Tensors map[string][]float64 `json:"tensors"`
		Shapes  map[string][]int     `json:"shapes"`
		Types   map[string]string    `json:"types"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	wantKV := map[string]any{"general.architecture": "controlvector", "controlvector.model_hint": "llama",
		"controlvector.layer_count": float64(3), "refusalkit.source_row": "4"}
	if !reflect.DeepEqual(got.KV, wantKV) {
		t.Errorf("keys %v, want %v", got.KV, wantKV)
	}
	for n, d := range sample().Directions {
		name := "direction." + string(rune('0'+n))
		if got.Types[name] != "F32" || !reflect.DeepEqual(got.Shapes[name], []int{5}) {
			t.Errorf("%s: type %s shape %v, want F32 [5]", name, got.Types[name], got.Shapes[name])
		}
		for i, x := range d {
			if float32(got.Tensors[name][i]) != x {
				t.Errorf("%s[%d] = %v, want %v", name, i, got.Tensors[name][i], x)
			}
		}
	}
}

func TestWriteRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		cv   *ControlVector
		want string
	}{
		"no directions": {&ControlVector{NEmbd: 2}, "control vector has no direction tensors"},
		"index 0":       {&ControlVector{NEmbd: 1, Directions: map[int][]float32{0: {1}}}, "direction.0: llama.cpp has no layer 0 to add it to (indices start at 1)"},
		"length":        {&ControlVector{NEmbd: 2, Directions: map[int][]float32{1: {1}}}, "direction.1 has 1 values but the vector's n_embd is 2"},
		"reserved key":  {&ControlVector{NEmbd: 1, Directions: map[int][]float32{1: {1}}, Strings: map[string]string{KeyLayerCount: "x"}}, `string key "controlvector.layer_count" is written from the vector's own fields`},
	} {
		if err := Write(&bytes.Buffer{}, tc.cv); err == nil || err.Error() != tc.want {
			t.Errorf("%s: got %v, want %q", name, err, tc.want)
		}
	}
}

func TestReadRefuses(t *testing.T) {
	dir := t.TempDir()
	// A model GGUF (another architecture): patch the architecture string of a valid file.
	var b bytes.Buffer
	_ = Write(&b, sample())
	notCV := bytes.Replace(b.Bytes(), []byte("controlvector\x0b"), []byte("controlvectoX\x0b"), 1)
	notCV = bytes.Replace(notCV, []byte("\x0d\x00\x00\x00\x00\x00\x00\x00controlvector"), []byte("\x0d\x00\x00\x00\x00\x00\x00\x00llamallamalla"), 1)
	p := filepath.Join(dir, "model.gguf")
	_ = os.WriteFile(p, notCV, 0o644)
	if _, err := Read(p); err == nil || !strings.Contains(err.Error(), `general.architecture "llamallamalla", not a control vector`) {
		t.Errorf("other architecture: %v", err)
	}
	// A tensor with another name.
	renamed := bytes.Replace(b.Bytes(), []byte("direction.3"), []byte("directioX.3"), 1)
	p = filepath.Join(dir, "renamed.gguf")
	_ = os.WriteFile(p, renamed, 0o644)
	if _, err := Read(p); err == nil || !strings.Contains(err.Error(), `tensor "directioX.3" is not named direction.N`) {
		t.Errorf("renamed tensor: %v", err)
	}
	p = filepath.Join(dir, "junk.gguf")
	_ = os.WriteFile(p, []byte("not a gguf"), 0o644)
	if _, err := Read(p); err == nil || !strings.Contains(err.Error(), "is not a readable GGUF file") {
		t.Errorf("junk: %v", err)
	}
	if _, err := Read(filepath.Join(dir, "absent.gguf")); err == nil || !strings.Contains(err.Error(), "no control vector at") {
		t.Errorf("absent: %v", err)
	}
}

func TestDirectionIndex(t *testing.T) {
	for name, want := range map[string]int{"direction.1": 1, "direction.29": 29, "direction.0": 0} {
		if n, ok := directionIndex(name); !ok || n != want {
			t.Errorf("%s: %d %v", name, n, ok)
		}
	}
	for _, name := range []string{"direction.", "direction.-1", "direction.+1", "direction.1a", "dir.1", "direction.1.0"} {
		if _, ok := directionIndex(name); ok {
			t.Errorf("%s parsed", name)
		}
	}
}
