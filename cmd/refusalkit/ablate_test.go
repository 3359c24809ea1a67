package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
	"github.com/refusalkit/refusalkit/refusalkit/tensorfile"
)

// Bad flags, layers without a direction and a folder that holds an
// ablation are refused before the model loads: exit 2, one exact line,
// nothing written.
func TestAblateRefusedBeforeWork(t *testing.T) {
	tiny := models.TinyConfig().Name
	unit := vectorDir(t, "unit", tiny, 1)
	zero := vectorDir(t, "zero", tiny, 0)
	evaluated := vectorDir(t, "evaluated", tiny, 1)
	if err := tensorfile.WriteJSONAtomic(filepath.Join(evaluated, runs.EvalSummaryFile), refusalkit.EvalSummary{SelectedLayer: 9}); err != nil {
		t.Fatal(err)
	}
	ablated := vectorDir(t, "ablated", tiny, 1)
	if err := os.WriteFile(filepath.Join(ablated, runs.AblationSummaryFile), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	halfDone := vectorDir(t, "half", tiny, 1)
	if err := os.WriteFile(filepath.Join(halfDone, runs.AblationCompletionsFile), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	ablate := func(dir string, args ...string) []string {
		return append([]string{"ablate", "--model_path", "tiny-random", "--vector_dir", dir, "--output_dir", out}, args...)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"ablate", "--vector_dir", unit}, "refusalkit ablate: --model_path and --vector_dir are required (see --help)"},
		{ablate(unit, "--layer", "1", "--max_new_tokens", "0"), "refusalkit ablate: --max_new_tokens must be a positive integer, got 0"},
		{ablate(unit, "--layer", "1", "--batch_size", "-1"), "refusalkit ablate: --batch_size must be a positive integer, got -1"},
		{ablate(unit, "--layer", "1", "--n_induced", "0"), "refusalkit ablate: --n_induced must be a positive integer, got 0"},
		{ablate(unit, "--layer", "-2"), "refusalkit ablate: --layer must be 0 or more, got -2"},
		{ablate(unit, "--direction", "mean"), `refusalkit ablate: --direction "mean": use vector or harmful_harmless`},
		{ablate(unit, "--direction", "harmful_harmless"), "refusalkit ablate: --direction harmful_harmless needs --layer, or eval_summary.json in " + unit +
			" for the refusal tokens that select its layer (run `refusalkit evaluate` first)"},
		{ablate(unit, "--direction", "harmful_harmless", "--layer", "5"), "refusalkit ablate: --layer 5 is outside the direction's layers 0..3: choose another layer"},
		{ablate(unit, "--layer", "x"), `refusalkit ablate: invalid value "x" for flag -layer: parse error (see --help)`},
		{ablate(unit), "refusalkit ablate: --layer is required: " + unit + " holds no eval_summary.json to take the selected layer from (run `refusalkit evaluate` first, or give --layer)"},
		{ablate(unit, "--layer", "9"), "refusalkit ablate: --layer 9 is outside the refusal vector's layers 0..3: choose another layer"},
		{ablate(evaluated), "refusalkit ablate: layer 9 is outside the refusal vector's layers 0..3: choose another layer (the selected_layer of " + filepath.Join(evaluated, runs.EvalSummaryFile) + ")"},
		{ablate(zero, "--layer", "1"), "refusalkit ablate: --layer 1: the refusal vector's row there has length 0, so it gives no direction to ablate: choose another layer"},
		{ablate(unit, "--layer", "1", "--n_induced", "100000"), "refusalkit ablate: --n_induced: 100000 test queries requested but the test split has"},
		{[]string{"ablate", "--model_path", "tiny-random", "--vector_dir", ablated, "--layer", "1"},
			"refusalkit ablate: " + ablated + " already holds an ablation (ablation_summary.json): choose another --output_dir or pass --overwrite"},
		{[]string{"ablate", "--model_path", "tiny-random", "--vector_dir", halfDone, "--layer", "1"},
			"refusalkit ablate: " + halfDone + " holds an interrupted ablation (ablation_completions.json): pass --overwrite to replace it"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args[len(c.args)-2:], " "), func(t *testing.T) {
			stderr := refusedBeforeWork(t, c.args, out)
			if !strings.HasPrefix(stderr, c.want) {
				t.Errorf("stderr %q, want %q", stderr, c.want)
			}
		})
	}
}

// A whole ablation on the tiny model writes its files and charts, and a
// second one needs --overwrite.
func TestAblateWritesItsFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 242 short completions")
	}
	dir := vectorDir(t, "run", models.TinyConfig().Name, 1)
	args := []string{"ablate", "--model_path", "tiny-random", "--vector_dir", dir, "--layer", "2", "--max_new_tokens", "2", "--n_induced", "1", "--backend", "go"}
	if code, stderr := runCaptured(t, args...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, name := range []string{runs.AblationSummaryFile, runs.AblationCompletionsFile, runs.DirectionCosinesFile,
		filepath.Join(runs.ChartsDir, runs.ChartAblationRates+".html"), filepath.Join(runs.ChartsDir, runs.ChartDirectionCosine+".html")} {
		if !dirHas(dir, name) {
			t.Errorf("%s was not written", name)
		}
	}
	for _, name := range []string{runs.HarmfulHarmlessDirectionFile, runs.DirectionLayerScoresFile} {
		if dirHas(dir, name) {
			t.Errorf("%s was written by an ablation of the refusal vector", name)
		}
	}
	var s refusalkit.AblationSummary
	if !readJSONFile(filepath.Join(dir, runs.AblationSummaryFile), &s) || s.Layer != 2 || s.LayerSource != "--layer" ||
		s.JailbreakBench.Ablated.TotalCount != 100 || s.InducedRefusal.Baseline.TotalCount != 1 || s.VectorDir != dir ||
		s.RefusalInstruction != refusalkit.DefaultRefusalInstruction {
		t.Errorf("summary %+v", s)
	}
	if code, stderr := runCaptured(t, args...); code != 2 || !strings.Contains(stderr, "already holds an ablation") {
		t.Errorf("second run: exit %d, %s", code, stderr)
	}
	stray, mine := filepath.Join(dir, ".ablation_summary.json.tmp-5"), filepath.Join(dir, ".notes.txt.tmp-5")
	for _, p := range []string{stray, mine} {
		if err := os.WriteFile(p, []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, stderr := runCaptured(t, append(args, "--overwrite")...); code != 0 {
		t.Errorf("--overwrite: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(stray); err == nil {
		t.Errorf("a killed ablation's temporary file outlived the next run")
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("the user's file was removed: %v", err)
	}
}

// --direction harmful_harmless ablates the reference method's direction at
// the layer its own steering score selects, in VECTOR_DIR/harmful_harmless by
// default, and writes that direction as a vector file beside its layer scores.
func TestAblateHarmfulHarmlessDirection(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 242 short completions")
	}
	dir := vectorDir(t, "run", models.TinyConfig().Name, 1)
	tokens := refusalkit.RefusalTokens{IDs: []int32{'I', 'S'}}
	if err := tensorfile.WriteJSONAtomic(filepath.Join(dir, runs.EvalSummaryFile),
		refusalkit.EvalSummary{SelectedLayer: 1, NValidationSamples: 3, RefusalTokens: tokens}); err != nil {
		t.Fatal(err)
	}
	args := []string{"ablate", "--model_path", "tiny-random", "--vector_dir", dir, "--direction", "harmful_harmless",
		"--max_new_tokens", "2", "--n_induced", "1", "--backend", "go"}
	if code, stderr := runCaptured(t, args...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	out := filepath.Join(dir, refusalkit.DirectionHarmfulHarmless)
	for _, name := range runs.AblationFiles() {
		if !dirHas(out, name) {
			t.Errorf("%s was not written in %s", name, out)
		}
	}
	var s refusalkit.AblationSummary
	var scores refusalkit.LayerScores
	if !readJSONFile(filepath.Join(out, runs.AblationSummaryFile), &s) || !readJSONFile(filepath.Join(out, runs.DirectionLayerScoresFile), &scores) {
		t.Fatal("unreadable summary or layer scores")
	}
	if s.Direction != refusalkit.DirectionHarmfulHarmless || s.Layer != scores.Selected().Layer || len(scores.ValidationQueries) != 3 ||
		!strings.HasPrefix(s.AblationSite, "the unit direction of harmful_harmless[") || s.JailbreakBench.Ablated.TotalCount != 100 {
		t.Errorf("summary %+v, selected layer %d", s, scores.Selected().Layer)
	}
	ref, err := runs.ReadVectorFile(filepath.Join(out, runs.HarmfulHarmlessDirectionFile))
	if err != nil {
		t.Fatal(err)
	}
	if ref.NRefusal != 100 || ref.NCompliant != 100 || len(ref.Data) != models.TinyConfig().NumLayers+1 {
		t.Errorf("direction file: %d harmful, %d harmless, %d rows", ref.NRefusal, ref.NCompliant, len(ref.Data))
	}
	var dc refusalkit.DirectionCosines
	if !readJSONFile(filepath.Join(out, runs.DirectionCosinesFile), &dc) || dc.Layer != s.Layer {
		t.Errorf("direction cosines at layer %d, ablated %d", dc.Layer, s.Layer)
	}
}
