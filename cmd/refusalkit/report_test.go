package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/internal/testutil"
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// report reads a run folder back and prints what its files say: extract,
// evaluate and both ablations at small settings on the bundled model, then
// the report's tables checked against the JSON files they come from.
func TestReport(t *testing.T) {
	if testing.Short() {
		t.Skip("generates with the bundled model")
	}
	if _, err := models.Resolve(models.DefaultModel); err != nil {
		t.Skipf("bundled model not installed (%v)", err)
	}
	dir := filepath.Join(t.TempDir(), "run")
	steps := [][]string{
		{"extract", "--model_path", models.DefaultModel, "--output_dir", dir, "--n_samples", "3", "--n_completions", "4",
			"--max_new_tokens", "16", "--refusal_instruction", refusalkit.DeclineInstruction},
		{"evaluate", "--model_path", models.DefaultModel, "--vector_dir", dir, "--n_validation_samples", "3", "--n_test_samples", "3",
			"--coefficients", "0", "1", "--max_new_tokens", "8"},
		{"ablate", "--model_path", models.DefaultModel, "--vector_dir", dir, "--max_new_tokens", "2", "--n_induced", "2"},
		{"ablate", "--model_path", models.DefaultModel, "--vector_dir", dir, "--direction", "harmful_harmless", "--max_new_tokens", "2", "--n_induced", "2"},
	}
	for _, args := range steps {
		if code, stderr := runCaptured(t, args...); code != 0 {
			t.Fatalf("%s: exit %d: %s", args[0], code, stderr)
		}
	}
	code, out, stderr := runStdout(t, "report", "--run_dir", dir, "--title", "W0 small")
	if code != 0 {
		t.Fatalf("report: exit %d: %s", code, stderr)
	}
	var sum refusalkit.EvalSummary
	var ab, hh refusalkit.AblationSummary
	testutil.ReadJSON(t, filepath.Join(dir, runs.EvalSummaryFile), &sum)
	testutil.ReadJSON(t, filepath.Join(dir, runs.AblationSummaryFile), &ab)
	testutil.ReadJSON(t, filepath.Join(dir, refusalkit.DirectionHarmfulHarmless, runs.AblationSummaryFile), &hh)
	r0 := sum.ResultsByCoefficient[refusalkit.CoeffKey(0)]
	jb := ab.JailbreakBench
	for _, want := range []string{
		"## W0 small\n",
		"### What the model does unsteered, by each judge",
		fmt.Sprintf("Selected layer **%d** (%s)", sum.SelectedLayer, sum.LayerSelectionMethod),
		fmt.Sprintf("| 0 | %d/%d (%.2f) |", r0.RefusalCount, r0.TotalCount, r0.RefusalRate),
		"### The refusal vector against the harmful–harmless direction",
		fmt.Sprintf("| refusal_vector | %d | jailbreakbench | %d → %d / 100 |", ab.Layer, jb.Baseline.RefusalCount, jb.Ablated.RefusalCount),
		fmt.Sprintf("| harmful_harmless | %d | jailbreakbench | %d → %d / 100 |", hh.Layer, hh.JailbreakBench.Baseline.RefusalCount, hh.JailbreakBench.Ablated.RefusalCount),
		fmt.Sprintf("- harmful_harmless (layer %d): ", hh.Layer),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	if code, stderr := runCaptured(t, "report", "--run_dir", t.TempDir()); code != 2 || !strings.Contains(stderr, "holds no metadata.json") {
		t.Errorf("a folder without an extraction: exit %d, %s", code, stderr)
	}
}
