package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// vectorDir writes a refusal vector for the tiny model, every value v.
func vectorDir(t *testing.T, name, model string, v float32) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := models.TinyConfig()
	rv := &refusalkit.RefusalVector{Model: model, NLayers: c.NumLayers, DModel: c.DModel, Data: make([][]float32, c.NumLayers+1)}
	for i := range rv.Data {
		rv.Data[i] = make([]float32, c.DModel)
		for j := range rv.Data[i] {
			rv.Data[i][j] = v
		}
	}
	if err := runs.SaveVector(dir, rv); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Values that break the computation, and checks that used to come after
// the work, are refused before any work: exit 2, one line, nothing written.
func TestValuesRefusedBeforeWork(t *testing.T) {
	tmp := t.TempDir()
	tiny := models.TinyConfig().Name
	unit := vectorDir(t, "unit", tiny, 1)
	huge := vectorDir(t, "huge", tiny, 3e38)
	nan := vectorDir(t, "nan", tiny, float32(math.NaN()))
	long := filepath.Join(tmp, "long.jsonl")
	var rows strings.Builder
	for i := range 40 { // enough rows that every split has some; each instruction is past the tiny model's context
		rows.WriteString(`{"instruction": "` + strings.Repeat("word ", 120) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `"}` + "\n")
	}
	_ = os.WriteFile(long, []byte(rows.String()), 0o644)
	nul := filepath.Join(tmp, "nul.jsonl")
	_ = os.WriteFile(nul, []byte("{\"instruction\": \"fine\"}\n{\"instruction\": \"bad\\u0000byte\"}\n"), 0o644)
	out := filepath.Join(tmp, "out")
	extract := func(args ...string) []string {
		return append([]string{"extract", "--model_path", "tiny-random", "--output_dir", out, "--n_samples", "2", "--n_completions", "1", "--max_new_tokens", "4"}, args...)
	}
	evaluate := func(dir string, args ...string) []string {
		return append([]string{"evaluate", "--model_path", "tiny-random", "--vector_dir", dir, "--output_dir", out, "--n_validation_samples", "2", "--n_test_samples", "2"}, args...)
	}
	cases := []struct {
		args []string
		want string
	}{
		{extract("--temperature", "NaN"), "--temperature must be a finite number > 0, got NaN"},
		{extract("--temperature", "+Inf"), "--temperature must be a finite number > 0, got +Inf"},
		{extract("--top_p", "0"), "--top_p must be in (0, 1] (1: off), got 0"},
		{extract("--top_p", "-1"), "--top_p must be in (0, 1]"},
		{extract("--top_p", "2"), "--top_p must be in (0, 1]"},
		{extract("--top_k", "-5"), "--top_k must be 0 (off) or positive, got -5"},
		{[]string{"generate", "--model_path", "tiny-random", "--prompt", "hi", "--temperature", "NaN"}, "--temperature must be a finite number > 0, got NaN (or --greedy"},
		{[]string{"generate", "--model_path", "tiny-random", "--prompt", "a\x00b"}, "--prompt has a NUL byte at byte 1"},
		{extract("--refusal_instruction", "no\x00"), "--refusal_instruction has a NUL byte at byte 2"},
		{extract("--n_completions", "2", "--refusal_instruction", "ok", "--refusal_instruction", "no\x00"), "--refusal_instruction 2 has a NUL byte at byte 2"},
		{extract("--n_completions", "3", "--refusal_instruction", "A.", "--refusal_instruction", "B.", "--refusal_instruction", "A."), `--refusal_instruction 3 repeats --refusal_instruction 1 ("A.")`},
		{extract("--refusal_instruction", "A.", "--refusal_instruction", "B."), "--n_completions 1 is smaller than the 2 refusal instructions"},
		{extract("--dataset", nul), "instruction 2 has a NUL byte"},
		{extract("--dataset", long), "exceeds the model's context of 512 tokens: shorten it or lower --max_new_tokens"},
		{extract("--max_new_tokens", "500"), "exceeds the model's context of 512 tokens"},
		{evaluate(unit, "--coefficients", "1e39"), "--coefficients 1e+39 times the vector's largest value 1 overflows float32"},
		{evaluate(unit, "--coefficients", "1e300"), "overflows float32"},
		{evaluate(huge, "--coefficients", "2"), "overflows float32"},
		{evaluate(nan), "holds NaN or infinite values"},
		{evaluate(unit, "--n_test_samples", "100000"), "100000 test queries requested but the test split has"},
		{evaluate(unit, "--refusal_tokens", "5,99999"), "--refusal_tokens: id 99999 is outside the vocabulary"},
		{evaluate(unit, "--dataset", long), "exceeds the model's context"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args[:1], " ")+" "+strings.Join(c.args[len(c.args)-2:], " "), func(t *testing.T) {
			stderr := refusedBeforeWork(t, c.args, out)
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr %q lacks %q", stderr, c.want)
			}
		})
	}
}

// An all-zero vector and a vector naming another model of the same shape
// are warned about (and the run stops here at a later refusal).
func TestVectorWarnings(t *testing.T) {
	for _, c := range []struct {
		dir, want string
	}{
		{vectorDir(t, "zero", models.TinyConfig().Name, 0), "warning: the refusal vector is all zeros"},
		{vectorDir(t, "other", "SomeOtherModel", 1), `warning: the refusal vector was made with "SomeOtherModel", not "tiny-random-llama"`},
	} {
		code, stderr := runCaptured(t, "evaluate", "--model_path", "tiny-random", "--vector_dir", c.dir, "--output_dir", filepath.Join(t.TempDir(), "o"),
			"--n_validation_samples", "2", "--n_test_samples", "2", "--refusal_tokens", "99999")
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("exit %d, stderr %q lacks %q", code, stderr, c.want)
		}
	}
}
