package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/ggufvec"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// runStdout runs the command in-process and returns its exit status, stdout and stderr.
func runStdout(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	r, w, _ := os.Pipe()
	saved := os.Stdout
	os.Stdout = w
	code, stderr := runCaptured(t, args...)
	os.Stdout = saved
	w.Close()
	out, _ := io.ReadAll(r)
	return code, string(out), stderr
}

// exportFixture is a vector folder for a 6-block model of width 4: row l, entry i = 100l + i.
func exportFixture(t *testing.T) (dir string, v *refusalkit.RefusalVector) {
	dir = filepath.Join(t.TempDir(), "vec")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	v = &refusalkit.RefusalVector{Model: "Tiny", NLayers: 6, DModel: 4, NRefusal: 3, NCompliant: 5, Data: make([][]float32, 7),
		Provenance: runs.ExtractionProvenance(&refusalkit.Extraction{Model: "tiny-random", Queries: []string{"a", "b"}}, runs.Metadata{})}
	for l := range v.Data {
		v.Data[l] = []float32{float32(100 * l), float32(100*l + 1), float32(100*l + 2), float32(100*l + 3)}
	}
	if err := runs.SaveVector(dir, v); err != nil {
		t.Fatal(err)
	}
	return dir, v
}

func TestExportBadInput(t *testing.T) {
	dir, _ := exportFixture(t)
	tmp := t.TempDir()
	exists := filepath.Join(tmp, "exists.gguf")
	_ = os.WriteFile(exists, []byte("x"), 0o644)
	out := filepath.Join(tmp, "cv.gguf")
	base := []string{"export", "--vector_dir", dir, "--format", "llama.cpp", "--out", out}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"export"}, "refusalkit export: --vector_dir, --format and --out are required (see --help)"},
		{[]string{"export", "--vector_dir", dir, "--format", "onnx", "--out", out, "--layer", "2"}, `refusalkit export: --format must be llama.cpp, got "onnx"`},
		{append(base, "--layer", "0"), "refusalkit export: row 0 (the embedding output, entering block 0) has no llama.cpp control-vector slot: llama.cpp adds direction.N after block N, N ≥ 1; rows 2..5 can be exported"},
		{append(base, "--layer", "1"), "refusalkit export: row 1 (the output of block 0) has no llama.cpp control-vector slot: llama.cpp never adds after block 0 (it refuses direction.0); rows 2..5 can be exported"},
		{append(base, "--layer", "6"), "refusalkit export: row 6 is the final hidden state after the final norm: llama.cpp adds control vectors only between blocks; rows 2..5 can be exported"},
		{append(base, "--layers", "4-7"), "refusalkit export: row 6 is the final hidden state after the final norm: llama.cpp adds control vectors only between blocks; rows 2..5 can be exported"},
		{append(base, "--layers", "5-3"), `refusalkit export: --layers "5-3" is not a range A-B of rows (e.g. 2-5)`},
		{append(base, "--layer", "2", "--layers", "2-3"), "refusalkit export: give --layer or --layers, not both"},
		{append(base, "--layer", "2", "--coefficient", "0"), "refusalkit export: --coefficient must be a finite number other than 0, got 0"},
		{base, "refusalkit export: --layer is required: " + dir + " holds no eval_summary.json to take the selected layer from (run `refusalkit evaluate` first, or give --layer or --layers)"},
		{[]string{"export", "--vector_dir", dir, "--format", "llama.cpp", "--out", exists, "--layer", "2"}, "refusalkit export: --out " + exists + " exists: choose another name or pass --overwrite"},
		{[]string{"export", "--vector_dir", dir, "--format", "llama.cpp", "--out", filepath.Join(tmp, "cv.bin"), "--layer", "2"}, "refusalkit export: --out " + filepath.Join(tmp, "cv.bin") + " does not end in .gguf: llama.cpp control vectors are GGUF files"},
		{[]string{"export", "--vector_dir", tmp, "--format", "llama.cpp", "--out", out, "--layer", "2"}, "refusalkit export: no refusal vector at " + filepath.Join(tmp, runs.VectorSafetensorsFile) + ": give the folder written by `refusalkit extract` (--vector_dir)"},
		{[]string{"inspect"}, "refusalkit inspect: give one file to inspect (see --help)"},
		{[]string{"inspect", exists}, "refusalkit inspect: " + exists + ": tensor"},
		{[]string{"inspect", "../../testdata/reference/families/llama-dynamic/model.gguf"}, `refusalkit inspect: ../../testdata/reference/families/llama-dynamic/model.gguf is a GGUF file with general.architecture "llama", not a control vector ("controlvector")`},
	} {
		code, stderr := runCaptured(t, c.args...)
		if c.args[len(c.args)-1] == exists && c.args[0] == "inspect" {
			if code != 2 || !strings.Contains(stderr, "is not a readable GGUF file") {
				t.Errorf("%v: exit %d, %q", c.args, code, stderr)
			}
			continue
		}
		if code != 2 || strings.TrimSpace(stderr) != c.want {
			t.Errorf("%v:\n exit %d, stderr %q\n want exit 2, %q", c.args, code, stderr, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused export wrote %s", out)
	}
	if b, _ := os.ReadFile(exists); string(b) != "x" {
		t.Errorf("%s was overwritten", exists)
	}
}

// Export writes c × the rows at direction.(row-1), with the provenance; inspect
// prints both files' provenance; --overwrite replaces the file.
func TestExportAndInspect(t *testing.T) {
	dir, v := exportFixture(t)
	out := filepath.Join(t.TempDir(), "cv.gguf")
	code, stdout, stderr := runStdout(t, "export", "--vector_dir", dir, "--format", "llama.cpp", "--layers", "2-4", "--coefficient", "-0.5", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "rows 2,3,4 × -0.5 as direction.1, direction.2, direction.3") {
		t.Errorf("stdout %q", stdout)
	}
	cv, err := ggufvec.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if cv.NEmbd != 4 || cv.LayerCount != 5 || cv.ModelHint != "Tiny" || len(cv.Directions) != 3 {
		t.Fatalf("read back %+v", cv)
	}
	for n, d := range cv.Directions {
		for i, x := range d {
			if want := -0.5 * v.Data[n+1][i]; x != want {
				t.Fatalf("direction.%d[%d] = %v, want %v (row %d)", n, i, x, want, n+1)
			}
		}
	}
	for k, want := range map[string]string{"refusalkit.rows": refusalkit.RowConvention, "refusalkit.sign": "refusal minus compliant (mean over kept refusal responses − mean over kept compliant responses)",
		"refusalkit.operation": "add: steer with coefficient × row i added to the residual stream entering block i, at every position", "refusalkit.n_queries": "2", "refusalkit.seed": "42"} {
		if cv.Strings[k] != want {
			t.Errorf("%s = %q, want %q", k, cv.Strings[k], want)
		}
	}
	if code, _, stderr := runStdout(t, "export", "--vector_dir", dir, "--format", "llama.cpp", "--layer", "5", "--out", out); code != 2 || !strings.Contains(stderr, "exists") {
		t.Errorf("second export: exit %d %q", code, stderr)
	}
	if code, _, stderr := runStdout(t, "export", "--vector_dir", dir, "--format", "llama.cpp", "--layer", "5", "--out", out, "--overwrite"); code != 0 {
		t.Errorf("--overwrite: exit %d %q", code, stderr)
	}
	if cv, _ := ggufvec.Read(out); cv == nil || len(cv.Directions) != 1 || cv.Directions[4][1] != 501 {
		t.Errorf("--overwrite did not replace the file: %+v", cv)
	}

	code, stdout, _ = runStdout(t, "inspect", dir)
	for _, want := range []string{"refusal_vector.safetensors: refusalkit refusal vector, float32 [7, 4]",
		"rows: " + refusalkit.RowConvention, "sign: refusal minus compliant", "operation: add: ", "method: difference of means",
		"model: Tiny", "n_refusal: 3", "n_compliant: 5", "seed: 42", "made_by: refusalkit extract", `refusal_instructions: ["`,
		"llama.cpp: rows 2..5 export as direction.1..4 (row r → direction.r-1); rows 0, 1 and 6 have no slot"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("inspect folder: exit %d, lacks %q:\n%s", code, want, stdout)
		}
	}
	code, stdout, _ = runStdout(t, "inspect", out)
	for _, want := range []string{"llama.cpp control vector, 1 directions of 4 values", "controlvector.model_hint: Tiny",
		"controlvector.layer_count: 5", "refusalkit.exported_rows: 5", "direction.4: norm", "added to the output of block 4 = refusalkit row 5"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("inspect gguf: exit %d, lacks %q:\n%s", code, want, stdout)
		}
	}
}

// evaluate --vector: the file is checked before the model loads where it can
// be, and against the model's shape right after it loads.
func TestEvaluateVectorBadInput(t *testing.T) {
	tmp := t.TempDir()
	cvPath := filepath.Join(tmp, "cv.gguf")
	f, _ := os.Create(cvPath)
	if err := ggufvec.Write(f, &ggufvec.ControlVector{ModelHint: "llama", NEmbd: 3, Directions: map[int][]float32{1: {1, 2, 3}}}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	model := "../../testdata/reference/families/llama-dynamic/model.gguf"
	out := filepath.Join(tmp, "ev")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"evaluate", "--model_path", "x", "--vector", cvPath}, "refusalkit evaluate: --vector " + cvPath + " needs --output_dir: the folder to write the evaluation (and the vector as read) into"},
		{[]string{"evaluate", "--model_path", "x", "--vector", cvPath, "--vector_dir", tmp, "--output_dir", out}, "refusalkit evaluate: give --vector_dir or --vector, not both"},
		{[]string{"evaluate", "--model_path", "x", "--vector", filepath.Join(tmp, "no.gguf"), "--output_dir", out}, "refusalkit evaluate: --vector " + filepath.Join(tmp, "no.gguf") + " does not exist"},
		{[]string{"evaluate", "--model_path", "x", "--vector", model, "--output_dir", out}, "refusalkit evaluate: --vector " + model + ` is a GGUF file with general.architecture "llama", not a control vector ("controlvector")`},
		{[]string{"evaluate", "--model_path", "x", "--vector", tmp, "--output_dir", out}, "refusalkit evaluate: --vector " + tmp + " is neither a control vector (.gguf) nor a refusal vector (.safetensors)"},
		{[]string{"evaluate", "--vector", cvPath, "--output_dir", out}, "refusalkit evaluate: --model_path is required (see --help)"},
		{[]string{"evaluate", "--model_path", "tiny-random", "--vector", cvPath, "--output_dir", out}, "refusalkit evaluate: " + cvPath + ": the control vector's directions have 3 values but model"},
	} {
		code, stderr := runCaptured(t, c.args...)
		if code != 2 || !strings.HasPrefix(strings.TrimSpace(stderr), c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v:\n exit %d, stderr %q\n want exit 2, %q", c.args, code, stderr, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused evaluation created %s", out)
	}
}

// A control vector exported from one folder evaluates with --vector: only the
// row it holds is a candidate layer, and the output folder holds the vector
// as read, with its provenance.
func TestEvaluateImportedControlVector(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vec")
	_ = os.MkdirAll(dir, 0o755)
	v := &refusalkit.RefusalVector{Model: "tiny-random-llama", NLayers: 3, DModel: 32, Data: make([][]float32, 4)}
	for l := range v.Data {
		v.Data[l] = make([]float32, 32)
		for i := range v.Data[l] {
			v.Data[l][i] = float32((l*7+i)%5) - 2
		}
	}
	if err := runs.SaveVector(dir, v); err != nil {
		t.Fatal(err)
	}
	cvPath := filepath.Join(t.TempDir(), "cv.gguf")
	if code, _, stderr := runStdout(t, "export", "--vector_dir", dir, "--format", "llama.cpp", "--layer", "2", "--out", cvPath); code != 0 {
		t.Fatalf("export: %s", stderr)
	}
	out := filepath.Join(t.TempDir(), "ev")
	args := []string{"evaluate", "--model_path", "tiny-random", "--backend", "go", "--vector", cvPath, "--output_dir", out,
		"--n_validation_samples", "2", "--n_test_samples", "2", "--max_new_tokens", "4", "--batch_size", "2", "--coefficients", "0", "1"}
	if code, _, stderr := runStdout(t, args...); code != 0 {
		t.Fatalf("evaluate --vector: exit %d: %s", code, stderr)
	}
	var scores refusalkit.LayerScores
	if !readJSONFile(filepath.Join(out, runs.LayerSelectionFile), &scores) || len(scores.PerLayerScores) != 1 || scores.PerLayerScores[0].Layer != 2 {
		t.Errorf("layer scores %+v, want row 2 alone", scores.PerLayerScores)
	}
	back, err := runs.LoadVector(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Rows) != 1 || back.Rows[0] != 2 || back.Data[2][3] != v.Data[2][3] || back.Data[1][3] != 0 ||
		back.Provenance["source"] != cvPath || back.Provenance["source.exported_rows"] != "2" {
		t.Errorf("saved vector: rows %v, provenance %v", back.Rows, back.Provenance)
	}
	if code, _, stderr := runStdout(t, args...); code != 2 || !strings.Contains(stderr, "already holds a refusal vector") {
		t.Errorf("second evaluate into the same folder: exit %d %q", code, stderr)
	}
}

// inspect --compare prints every row's cosine and norm ratio, the lowest
// cosine past row 0, and only the provenance entries that differ; FILE may
// come before or after the flag.
func TestInspectCompare(t *testing.T) {
	dirA, v := exportFixture(t)
	w := &refusalkit.RefusalVector{Model: v.Model, NLayers: v.NLayers, DModel: v.DModel, NRefusal: v.NRefusal, NCompliant: v.NCompliant,
		Data: make([][]float32, len(v.Data)), Provenance: map[string]string{}}
	for k, val := range v.Provenance {
		w.Provenance[k] = val
	}
	w.Provenance["seed"], w.Provenance["dtype"] = "43", "bfloat16"
	for l, row := range v.Data {
		w.Data[l] = append([]float32(nil), row...)
		for d := range w.Data[l] {
			w.Data[l][d] *= 2 // same direction, twice the norm
		}
	}
	w.Data[3] = []float32{-300, -301, -302, -303} // the opposite direction at row 3
	w.Data[5][0] = 0                              // a turned row 5
	fileB := filepath.Join(t.TempDir(), "b.safetensors")
	if err := runs.WriteVectorFile(fileB, w); err != nil {
		t.Fatal(err)
	}
	cos, _ := refusalkit.LayerCosines(v, w)
	for _, args := range [][]string{{"inspect", dirA, "--compare", fileB}, {"inspect", "--compare", fileB, dirA}} {
		code, stdout, stderr := runStdout(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		for _, want := range []string{"row  cosine  norm ratio", "  1  1.0000  0.500", "  3  -1.0000  1.000",
			fmt.Sprintf("  5  %.4f  ", cos[5]), "lowest cosine past row 0: -1.0000 (row 3)",
			"provenance that differs (this file | --compare):", `  seed: "42" | "43"`, `  dtype: "" | "bfloat16"`} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%v lacks %q:\n%s", args, want, stdout)
			}
		}
		if strings.Contains(stdout, "made_by:") {
			t.Errorf("%v prints provenance that is the same:\n%s", args, stdout)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"inspect", dirA, "--compare", "nope"}, "refusalkit inspect: --compare: nope does not exist"},
		{[]string{"inspect", dirA, "--compare", "../../testdata/reference/families/llama-dynamic/model.gguf"},
			"refusalkit inspect: --compare: ../../testdata/reference/families/llama-dynamic/model.gguf is not a refusalkit vector (a .safetensors file or its folder): compare control vectors after `refusalkit evaluate --vector`"},
		{[]string{"inspect", dirA, "extra", "--compare", fileB}, "refusalkit inspect: give one file to inspect (see --help)"},
	} {
		if code, stderr := runCaptured(t, c.args...); code != 2 || strings.TrimSpace(stderr) != c.want {
			t.Errorf("%v:\n exit %d, stderr %q\n want exit 2, %q", c.args, code, stderr, c.want)
		}
	}
	short := &refusalkit.RefusalVector{Model: "Tiny", NLayers: 1, DModel: 4, Data: [][]float32{{1, 2, 3, 4}, {1, 2, 3, 4}}}
	fileC := filepath.Join(t.TempDir(), "c.safetensors")
	if err := runs.WriteVectorFile(fileC, short); err != nil {
		t.Fatal(err)
	}
	if code, stderr := runCaptured(t, "inspect", dirA, "--compare", fileC); code != 2 ||
		strings.TrimSpace(stderr) != "refusalkit inspect: cannot compare a refusal vector of shape [7, 4] with one of shape [2, 4]: use vectors of the same model" {
		t.Errorf("shape mismatch: exit %d %q", code, stderr)
	}
}
