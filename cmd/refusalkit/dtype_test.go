package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// --dtype reaches the model, metadata.json and eval_summary.json, and a
// vector extracted in float32 steers the model loaded in bfloat16 (the
// reverse is models' TestSteeringAcrossDTypes).
func TestDTypeFlag(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	// The tiny model does not refuse: the extraction ends with too few
	// responses (exit 1), after writing its metadata.
	code, stderr := runCaptured(t, "extract", "--model_path", "tiny-random", "--backend", "go", "--dtype", "bfloat16",
		"--n_samples", "3", "--n_completions", "2", "--max_new_tokens", "4", "--output_dir", dir)
	if code != 0 && code != 1 {
		t.Fatalf("extract --dtype bfloat16: exit %d: %s", code, stderr)
	}
	field := func(dir, file string) string {
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			DType string `json:"dtype"`
		}
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatal(err)
		}
		return v.DType
	}
	if got := field(dir, runs.MetadataFile); got != "bfloat16" {
		t.Errorf("metadata.json dtype %q, want bfloat16", got)
	}
	evDir, _ := evaluatedRun(t) // a float32 extraction
	if got := field(evDir, runs.MetadataFile); got != "float32" {
		t.Errorf("metadata.json of the default run: dtype %q, want float32", got)
	}
	// The vector file says what made it, for inspect --compare.
	v, err := runs.ReadVectorFile(filepath.Join(evDir, runs.VectorSafetensorsFile))
	if err != nil {
		t.Fatal(err)
	}
	var md struct{ Backend string }
	if data, err := os.ReadFile(filepath.Join(evDir, runs.MetadataFile)); err != nil || json.Unmarshal(data, &md) != nil {
		t.Fatalf("metadata.json: %v", err)
	}
	if meta := runs.VectorMetadata(v); meta["dtype"] != "float32" || meta["backend"] != md.Backend || md.Backend == "" || meta["judge"] != "substring" {
		t.Errorf("vector file records dtype %q, backend %q, judge %q; want float32, %q (metadata.json's), substring", meta["dtype"], meta["backend"], meta["judge"], md.Backend)
	}
	code, stderr = runCaptured(t, append(evaluateArgs(evDir, "0", "1"), "--dtype", "bfloat16", "--overwrite")...)
	if code != 0 {
		t.Fatalf("evaluate --dtype bfloat16 of a float32 vector: exit %d: %s", code, stderr)
	}
	if got := field(evDir, runs.EvalSummaryFile); got != "bfloat16" {
		t.Errorf("eval_summary.json dtype %q, want bfloat16", got)
	}
	code, stderr = runCaptured(t, "generate", "--model_path", "tiny-random", "--backend", "go", "--dtype", "float16", "--prompt", "hi", "--max_new_tokens", "3", "--greedy")
	if code != 0 {
		t.Fatalf("generate --dtype float16: exit %d: %s", code, stderr)
	}
}
