package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/charts"
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// The notebook's way (a runs.Run: Extract, Evaluate, WriteCharts) and the
// commands' way (extract, then evaluate) at the same small settings write
// the same set of files, with the same JSON schemas; what both compute
// (responses, vector, completions) is byte for byte the same.
func TestRunValueAndCommandsWriteTheSameFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("generates with the bundled model twice")
	}
	if _, err := models.Resolve(models.DefaultModel); err != nil {
		t.Skipf("bundled model not installed (%v)", err)
	}
	xcfg := refusalkit.ExtractConfig{NSamples: 3, GenerateConfig: refusalkit.GenerateConfig{
		NCompletions: 4, MaxNewTokens: 16, RefusalInstructions: []string{refusalkit.DeclineInstruction}}}
	ecfg := refusalkit.EvalConfig{NValidation: 3, NTest: 3,
		SweepConfig: refusalkit.SweepConfig{Coefficients: []float64{0, 1}, MaxNewTokens: 8}}

	lib := filepath.Join(t.TempDir(), "lib")
	m, err := models.Load(models.DefaultModel, nil)
	if err != nil {
		t.Fatal(err)
	}
	run, err := runs.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	x, err := run.Extract(m, xcfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run.Evaluate(m, x, ecfg); err != nil {
		t.Fatal(err)
	}
	if _, err := charts.WriteRun(run.Dir); err != nil {
		t.Fatal(err)
	}
	run.Close()
	m.Close()

	cli := filepath.Join(t.TempDir(), "cli")
	if code, stderr := runCaptured(t, "extract", "--model_path", models.DefaultModel, "--output_dir", cli,
		"--n_samples", "3", "--n_completions", "4", "--max_new_tokens", "16",
		"--refusal_instruction", refusalkit.DeclineInstruction); code != 0 {
		t.Fatalf("extract: exit %d: %s", code, stderr)
	}
	if code, stderr := runCaptured(t, "evaluate", "--model_path", models.DefaultModel, "--vector_dir", cli,
		"--n_validation_samples", "3", "--n_test_samples", "3", "--coefficients", "0,1", "--max_new_tokens", "8"); code != 0 {
		t.Fatalf("evaluate: exit %d: %s", code, stderr)
	}

	libFiles, cliFiles := tree(t, lib), tree(t, cli)
	if !slices.Equal(libFiles, cliFiles) {
		t.Fatalf("the run value wrote %v\nthe commands wrote %v", libFiles, cliFiles)
	}
	same := []string{runs.CompliantResponsesFile, runs.RefusalResponsesFile, runs.FilteredCompliantResponsesFile,
		runs.FilteredRefusalResponsesFile, runs.VectorPTFile, runs.VectorSafetensorsFile, runs.LayerSelectionFile,
		runs.CompletionsFile(0), runs.CompletionsFile(1)}
	for _, name := range libFiles {
		a, _ := os.ReadFile(filepath.Join(lib, name))
		b, _ := os.ReadFile(filepath.Join(cli, name))
		if slices.Contains(same, name) && !bytes.Equal(a, b) {
			t.Errorf("%s differs between the run value and the commands", name)
		}
		if strings.HasSuffix(name, ".json") {
			if sa, sb := jsonSchema(t, a), jsonSchema(t, b); !slices.Equal(sa, sb) {
				t.Errorf("%s: schemas differ:\nrun value %v\ncommands  %v", name, sa, sb)
			}
		}
	}
	t.Logf("%d files, the same in both folders: %v", len(libFiles), libFiles)
}

// tree lists the files under dir (relative paths, sorted), the lock file aside.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == runs.LockFile {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, rel)
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// jsonSchema lists every key path of a JSON document with its value's type
// ("[]" for array elements, whose schemas are merged).
func jsonSchema(t *testing.T, data []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			set[prefix+": object"] = true
			for k, e := range v {
				walk(prefix+"."+k, e)
			}
		case []any:
			set[prefix+": array"] = true
			for _, e := range v {
				walk(prefix+"[]", e)
			}
		case nil:
			set[prefix+": null"] = true
		default:
			set[fmt.Sprintf("%s: %T", prefix, v)] = true
		}
	}
	walk("", v)
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// rundir prints the folder extract writes by default, so scripts (the demo)
// never spell it themselves.
func TestRunDirPrintsTheDefault(t *testing.T) {
	t.Setenv(runs.RootEnvVar, filepath.Join(t.TempDir(), "elsewhere"))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	code, stderr := runCaptured(t, "rundir", "--model_path", models.TinyRandomModel)
	os.Stdout = saved
	w.Close()
	out, _ := io.ReadAll(r)
	m, err := models.Load(models.TinyRandomModel, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := runs.DefaultDir(m.Alias()) + "\n"; code != 0 || string(out) != want {
		t.Errorf("rundir: exit %d, printed %q (stderr %q), want %q", code, out, stderr, want)
	}
}
