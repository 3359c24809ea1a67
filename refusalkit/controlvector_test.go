package refusalkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"

	"github.com/refusalkit/refusalkit/refusalkit/ggufvec"
)

func testVector(nLayers, d int) *RefusalVector {
	v := &RefusalVector{Model: "m", NLayers: nLayers, DModel: d, Data: make([][]float32, nLayers+1),
		Provenance: map[string]string{"seed": "42"}}
	for l := range v.Data {
		v.Data[l] = make([]float32, d)
		for i := range v.Data[l] {
			v.Data[l][i] = float32(100*l + i)
		}
	}
	return v
}

// Row r sits where llama.cpp adds direction.r-1; rows 0, 1 and n_layers have no slot.
func TestLlamaCppIndex(t *testing.T) {
	const n = 30
	for r := 2; r <= n-1; r++ {
		got, err := LlamaCppIndex(r, n)
		if err != nil || got != r-1 {
			t.Errorf("row %d: %d, %v; want direction.%d", r, got, err, r-1)
		}
		back, err := RowOfLlamaCppIndex(got, n)
		if err != nil || back != r {
			t.Errorf("direction.%d: row %d, %v; want %d", got, back, err, r)
		}
	}
	for r, want := range map[int]string{
		0:  "row 0 (the embedding output, entering block 0) has no llama.cpp control-vector slot: llama.cpp adds direction.N after block N, N ≥ 1; rows 2..29 can be exported",
		1:  "row 1 (the output of block 0) has no llama.cpp control-vector slot: llama.cpp never adds after block 0 (it refuses direction.0); rows 2..29 can be exported",
		30: "row 30 is the final hidden state after the final norm: llama.cpp adds control vectors only between blocks; rows 2..29 can be exported",
		31: "row 31 is out of range: the vector has rows 0..30; rows 2..29 can be exported",
		-1: "row -1 is out of range: the vector has rows 0..30; rows 2..29 can be exported",
	} {
		if _, err := LlamaCppIndex(r, n); err == nil || err.Error() != want {
			t.Errorf("row %d: %v, want %q", r, err, want)
		}
	}
	for d, want := range map[int]string{
		0:  "direction.0 is out of range for a model of 30 blocks: llama.cpp adds direction.N for N in 1..29 (it would ignore this one)",
		30: "direction.30 is out of range for a model of 30 blocks: llama.cpp adds direction.N for N in 1..29 (it would ignore this one)",
		29: "direction.29 is added to the last block's output, before the final norm, where refusalkit has no row (row 30 is after the norm)",
	} {
		if _, err := RowOfLlamaCppIndex(d, n); err == nil || err.Error() != want {
			t.Errorf("direction.%d: %v, want %q", d, err, want)
		}
	}
}

// Export then import gives back c × the rows exported, at the same rows, and zeros elsewhere.
func TestControlVectorRoundTrip(t *testing.T) {
	v := testVector(6, 4)
	cv, err := v.ToControlVector([]int{2, 3, 5}, 2, "llama")
	if err != nil {
		t.Fatal(err)
	}
	if got := cv.Indices(); !reflect.DeepEqual(got, []int{1, 2, 4}) {
		t.Fatalf("directions %v, want [1 2 4]", got)
	}
	if cv.LayerCount != 5 || cv.ModelHint != "llama" || cv.Strings["refusalkit.seed"] != "42" || cv.Strings["refusalkit.exported_rows"] != "2,3,5" {
		t.Errorf("keys: layer_count %d hint %q strings %v", cv.LayerCount, cv.ModelHint, cv.Strings)
	}
	back, dropped, err := FromControlVector(cv, "m", 6, 4)
	if err != nil || dropped != nil {
		t.Fatal(err, dropped)
	}
	if !reflect.DeepEqual(back.Rows, []int{2, 3, 5}) {
		t.Errorf("rows %v", back.Rows)
	}
	for l, row := range back.Data {
		for i, x := range row {
			want := float32(0)
			if l == 2 || l == 3 || l == 5 {
				want = 2 * v.Data[l][i]
			}
			if x != want {
				t.Fatalf("row %d [%d] = %v, want %v", l, i, x, want)
			}
		}
	}
	if back.Provenance["source.seed"] != "42" {
		t.Errorf("provenance %v", back.Provenance)
	}
}

// cvector-generator's files hold direction.1..n_layer-1: the last one has no
// row and is dropped (and reported); a wrong width or an out-of-range index is refused.
func TestFromControlVectorRefuses(t *testing.T) {
	dirs := map[int][]float32{}
	for n := 1; n <= 5; n++ {
		dirs[n] = []float32{float32(n), 0, 0, 0}
	}
	cv := &ggufvec.ControlVector{ModelHint: "llama", LayerCount: 5, NEmbd: 4, Directions: dirs}
	v, dropped, err := FromControlVector(cv, "m", 6, 4)
	if err != nil || !reflect.DeepEqual(dropped, []int{5}) || !reflect.DeepEqual(v.Rows, []int{2, 3, 4, 5}) || v.Data[3][0] != 2 {
		t.Errorf("generator file: %v %v %v", err, dropped, v)
	}
	if _, _, err := FromControlVector(cv, "m", 6, 8); err == nil || err.Error() !=
		`the control vector's directions have 4 values but model m has d_model 8: use a control vector made for this model (its model_hint is "llama")` {
		t.Errorf("width: %v", err)
	}
	if _, _, err := FromControlVector(cv, "m", 4, 4); err == nil || err.Error() !=
		"direction.4 is out of range for a model of 4 blocks: llama.cpp adds direction.N for N in 1..3 (it would ignore this one)" {
		t.Errorf("index: %v", err)
	}
	only := &ggufvec.ControlVector{NEmbd: 4, Directions: map[int][]float32{5: {1, 2, 3, 4}}}
	if _, _, err := FromControlVector(only, "m", 6, 4); err == nil {
		t.Error("a file with only the last direction was accepted")
	}
	if _, err := testVector(6, 4).ToControlVector([]int{2, 6}, 1, ""); err == nil {
		t.Error("the final-norm row was exported")
	}
}

// A control vector written by the gguf Python package, as repeng's export does
// (GGUFWriter with architecture "controlvector"), loads with direction.N at row
// N+1 and its values exactly.
func TestFromPythonGGUFControlVector(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	py := filepath.Join(filepath.Dir(file), "..", ".cache", "pyref", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		t.Skipf("reference venv absent (%s): run tools/setup/pyref.sh", py)
	}
	path := filepath.Join(t.TempDir(), "repeng.gguf")
	script := `
import sys, numpy as np, gguf
w = gguf.GGUFWriter(sys.argv[1], "controlvector")
w.add_string("controlvector.model_hint", "llama")
w.add_uint32("controlvector.layer_count", 5)
for n in (1, 3, 4):
    w.add_tensor(f"direction.{n}", (np.arange(4, dtype=np.float32) - 1.5) * n)
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
`
	if out, err := exec.Command(py, "-c", script, path).CombinedOutput(); err != nil {
		t.Skipf("the reference venv cannot write GGUF: %v\n%s", err, out)
	}
	cv, err := ggufvec.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if cv.ModelHint != "llama" || cv.LayerCount != 5 {
		t.Errorf("hint %q, layer_count %d", cv.ModelHint, cv.LayerCount)
	}
	v, dropped, err := FromControlVector(cv, "m", 6, 4)
	if err != nil || dropped != nil {
		t.Fatal(err, dropped)
	}
	if !reflect.DeepEqual(v.Rows, []int{2, 4, 5}) {
		t.Fatalf("rows %v, want [2 4 5]", v.Rows)
	}
	for l, row := range v.Data {
		for i, x := range row {
			want := float32(0)
			if n := l - 1; n == 1 || n == 3 || n == 4 {
				want = (float32(i) - 1.5) * float32(n)
			}
			if x != want {
				t.Errorf("row %d [%d] = %v, want %v", l, i, x, want)
			}
		}
	}
}
