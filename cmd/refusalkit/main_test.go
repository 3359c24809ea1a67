package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// runCaptured runs the command in-process and returns its exit status and stderr.
func runCaptured(t *testing.T, args ...string) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	code := run(args)
	os.Stderr = saved
	w.Close()
	out, _ := io.ReadAll(r)
	return code, string(out)
}

// refusedBeforeWork runs args and checks they are refused before any work:
// exit 2, one line, nothing at out. It returns stderr, for the caller to match.
func refusedBeforeWork(t *testing.T, args []string, out string) string {
	t.Helper()
	code, stderr := runCaptured(t, args...)
	if code != 2 {
		t.Errorf("exit %d, want 2 (stderr %q)", code, stderr)
	}
	if lines := strings.Count(strings.TrimSpace(stderr), "\n"); lines > 0 {
		t.Errorf("error spans %d lines: %q", lines+1, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s was written", out)
		_ = os.RemoveAll(out)
	}
	return stderr
}

// Bad input: one clear line naming the problem and the fix, exit 2 for
// usage errors, and nothing written.
func TestBadInput(t *testing.T) {
	tmp := t.TempDir()
	aFile := filepath.Join(tmp, "a-file")
	_ = os.WriteFile(aFile, []byte("x"), 0o644)
	doneRun := filepath.Join(tmp, "done")
	_ = os.MkdirAll(doneRun, 0o755)
	_ = os.WriteFile(filepath.Join(doneRun, "metadata.json"), []byte("{}"), 0o644)
	emptyDataset := filepath.Join(tmp, "empty.jsonl")
	_ = os.WriteFile(emptyDataset, nil, 0o644)
	badDataset := filepath.Join(tmp, "bad.jsonl")
	_ = os.WriteFile(badDataset, []byte("{\"instruction\": \"ok\"}\n{not json\n"), 0o644)
	corruptGGUF := filepath.Join(tmp, "corrupt.gguf")
	_ = os.WriteFile(corruptGGUF, []byte("GGUF\x03\x00\x00\x00garbage"), 0o644)
	corruptVector := filepath.Join(tmp, "corrupt-vector")
	_ = os.MkdirAll(corruptVector, 0o755)
	_ = os.WriteFile(filepath.Join(corruptVector, runs.VectorSafetensorsFile), []byte("\x10\x00\x00\x00\x00\x00\x00\x00{not a header}"), 0o644)
	otherModel := filepath.Join(tmp, "other-model-vector")
	_ = os.MkdirAll(otherModel, 0o755)
	ov := &refusalkit.RefusalVector{Model: "SomeOtherModel", NLayers: 3, DModel: 8, Data: make([][]float32, 4)}
	for i := range ov.Data {
		ov.Data[i] = make([]float32, 8)
	}
	if err := runs.SaveVector(otherModel, ov); err != nil {
		t.Fatal(err)
	}
	const made = 7                                                   // entries the test itself puts in tmp
	baseModel := "../../testdata/reference/families/llama-legacy/hf" // a base model: no chat template

	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"extract"}, 2, "--model_path is required"},
		{[]string{"extract", "--model_path", "x", "--n_samples", "0"}, 2, "--n_samples must be a positive integer"},
		{[]string{"extract", "--model_path", "x", "--n_completions", "-1"}, 2, "--n_completions must be a positive integer"},
		{[]string{"extract", "--model_path", "x", "--max_new_tokens", "0"}, 2, "--max_new_tokens must be a positive integer"},
		{[]string{"extract", "--model_path", "x", "--generation_batch_size", "0"}, 2, "--generation_batch_size must be a positive integer"},
		{[]string{"extract", "--model_path", "x", "--n_samples", "1000000"}, 2, "exceeds the"},
		{[]string{"extract", "--model_path", "no-such-model"}, 2, "unknown model"},
		{[]string{"extract", "--model_path", "x", "--dataset", emptyDataset}, 2, "empty"},
		{[]string{"extract", "--model_path", "x", "--n_sample", "3"}, 2, "flag provided but not defined"},
		{[]string{"generate", "--model_path", "x"}, 2, "--prompt are required"},
		{[]string{"generate", "--model_path", "tiny-random", "--prompt", "hi", "--backend", "nope"}, 2, `backend "nope" did not load`},
		{[]string{"generate", "--model_path", "tiny-random", "--prompt", "hi", "--dtype", "float64"}, 2, `--dtype: unknown dtype "float64": use float32, bfloat16 or float16`},
		{[]string{"extract", "--model_path", "tiny-random", "--dtype", "half"}, 2, `--dtype: unknown dtype "half"`},
		{[]string{"generate", "--model_path", "tiny-random", "--prompt", "hi", "--devices", "0"}, 2, "--devices 0: want 1 or more"},
		{[]string{"generate", "--model_path", "tiny-random", "--prompt", "hi", "--backend", "go", "--devices", "2"}, 2, "--devices 2: the go backend has 1 device(s)"},
		{[]string{"evaluate", "--model_path", "x"}, 2, "--vector_dir are required"},
		{[]string{"extract", "--model_path", "no-such-model", "--judge", "llamaguard"}, 2, `--judge: unknown judge "llamaguard": valid values are substring, leading`},
		{[]string{"evaluate", "--model_path", "x", "--vector_dir", tmp, "--judge", "Leading"}, 2, `--judge: unknown judge "Leading": valid values are substring, leading`},
		{[]string{"judges"}, 2, "give --labels FILE, --run_dir DIR or both"},
		{[]string{"judges", "--labels", aFile}, 2, "--labels:"},
		{[]string{"judges", "--run_dir", tmp, "--split", "test"}, 2, "--split must be heldout, dev or all"},
		{[]string{"evaluate", "--model_path", "x", "--vector_dir", filepath.Join(tmp, "nope")}, 2, "is not a folder"},
		{[]string{"evaluate", "--model_path", "x", "--vector_dir", tmp, "--coefficients", "0", "NaN"}, 2, "not a finite number"},
		{[]string{"evaluate", "--model_path", "x", "--vector_dir", tmp, "--coefficients", "1,abc"}, 2, "not a finite number"},
		{[]string{"evaluate", "--model_path", "x", "--vector_dir", tmp, "--coefficients", "inf"}, 2, "not a finite number"},
		{[]string{"evaluate", "--model_path", "x", "--vector_dir", tmp}, 2, "no refusal vector"},
		{[]string{"evaluate", "--model_path", "x", "--vector_dir", tmp, "--batch_size", "0"}, 2, "--batch_size must be a positive integer"},
		{[]string{"charts", "--run_dir", tmp}, 1, "holds none of"},
		{[]string{"extract", "--model_path", filepath.Join(tmp, "missing.gguf")}, 2, "does not exist"},
		{[]string{"extract", "--model_path", corruptGGUF}, 2, "corrupt or truncated GGUF"},
		{[]string{"extract", "--model_path", "x", "--dataset", badDataset}, 2, "bad.jsonl"},
		{[]string{"extract", "--model_path", "tiny-random", "--max_new_tokens", "600"}, 2, "past the model's context"},
		{[]string{"extract", "--model_path", "tiny-random", "--output_dir", aFile}, 2, "is a file"},
		{[]string{"extract", "--model_path", "tiny-random", "--output_dir", filepath.Join(aFile, "sub")}, 2, "choose a writable --output_dir"},
		{[]string{"extract", "--model_path", "tiny-random", "--output_dir", doneRun}, 2, "already holds a run"},
		{[]string{"extract", "--model_path", "tiny-random", "--output_dir", doneRun, "--resume", "--overwrite"}, 2, "exclude each other"},
		{[]string{"evaluate", "--model_path", "tiny-random", "--vector_dir", corruptVector}, 2, "unreadable"},
		{[]string{"extract", "--model_path", baseModel, "--output_dir", filepath.Join(tmp, "base")}, 2, "has no chat template (a base model): extract needs an instruction-tuned chat model; `refusalkit generate --raw`"},
		{[]string{"generate", "--model_path", baseModel, "--prompt", "hi"}, 2, "has no chat template (a base model): pass --raw"},
		{[]string{"evaluate", "--model_path", "tiny-random", "--vector_dir", otherModel, "--output_dir", filepath.Join(tmp, "ev")}, 2, "made with \"SomeOtherModel\""},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, stderr := runCaptured(t, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, c.code, stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr %q lacks %q", stderr, c.want)
			}
			if c.code != 2 || len(c.args) == 0 {
				return
			}
			if lines := strings.Count(strings.TrimSpace(stderr), "\n"); lines > 0 {
				t.Errorf("error spans %d lines: %q", lines+1, stderr)
			}
			if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
				t.Errorf("stack trace in %q", stderr)
			}
		})
	}
	// Nothing was written into the folders given.
	if entries, _ := os.ReadDir(tmp); len(entries) != made {
		t.Errorf("the temp folder now holds %d entries, want the %d made by the test", len(entries), made)
	}
	if entries, _ := os.ReadDir(doneRun); len(entries) != 1 {
		t.Errorf("the previous run's folder was touched: %v", entries)
	}
}

func TestJoinSpaceLists(t *testing.T) {
	got := joinSpaceLists([]string{"--coefficients", "0.0", "0.5", "-1", "--n_test_samples", "3"}, "coefficients")
	want := []string{"--coefficients=0.0 0.5 -1", "--n_test_samples", "3"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}
