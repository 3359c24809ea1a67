package runs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/refusalkit"
)

// An evaluation killed while publishing leaves the staging folder, and is
// recognised as interrupted; the next save publishes exactly its own files.
func TestEvaluationKilledWhilePublishing(t *testing.T) {
	dir := t.TempDir()
	ev := &refusalkit.Evaluation{Summary: refusalkit.EvalSummary{Coefficients: []float64{0, 1}}, Scores: &refusalkit.LayerScores{},
		Completions: map[float64][]refusalkit.EvalCompletion{0: {}, 1: {}}}
	publishRename = func(from, to string) error {
		if filepath.Base(to) == EvalSummaryFile {
			return errors.New("killed")
		}
		return os.Rename(from, to)
	}
	defer func() { publishRename = os.Rename }()
	if err := SaveEvaluation(dir, ev, evalSummaryFile{}); err == nil {
		t.Fatal("the publication was not stopped")
	}
	if state, marker := EvaluationState(dir); state != EvalInterrupted || marker != EvalStagingDir {
		t.Fatalf("state %v (%s), want interrupted (%s)", state, marker, EvalStagingDir)
	}
	publishRename = os.Rename
	ev.Summary.Coefficients, ev.Completions = []float64{2}, map[float64][]refusalkit.EvalCompletion{2: {}}
	if err := SaveEvaluation(dir, ev, evalSummaryFile{}); err != nil {
		t.Fatal(err)
	}
	if state, _ := EvaluationState(dir); state != EvalComplete {
		t.Errorf("state %v after a full save", state)
	}
	names, _ := EvaluationFiles(dir)
	if want := []string{CompletionsFile(2), EvalSummaryFile, LayerSelectionFile}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("folder holds %v, want %v", names, want)
	}
	if _, err := os.Stat(filepath.Join(dir, EvalStagingDir)); err == nil {
		t.Errorf("the staging folder outlived the publication")
	}
}

// Only the project's own names are removed, and only their temporary files.
func TestRemoveStrayTemps(t *testing.T) {
	dir := t.TempDir()
	ours := []string{".metadata.json.tmp-123", ".eval_completions_coeff_0.5.json.tmp-9", ".eval_summary.json.tmp-1"}
	mine := []string{"metadata.json", ".notes.txt.tmp-5", ".metadata.json.tmp-x", "metadata.json.tmp-1", ".metadata.json.bak"}
	for _, name := range append(ours, mine...) {
		os.WriteFile(filepath.Join(dir, name), nil, 0o644)
	}
	if err := RemoveStrayTemps(dir, func(n string) bool { return IsExtractionFile(n) || IsEvaluationFile(n) }); err != nil {
		t.Fatal(err)
	}
	for _, name := range ours {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s is still there", name)
		}
	}
	for _, name := range mine {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s was removed", name)
		}
	}
	if !IsEvaluationFile("eval_completions_coeff_-1.0.json") || IsEvaluationFile("eval_completions_coeff_notes.json") {
		t.Errorf("IsEvaluationFile")
	}
}

func TestCompletionsFileLikeTheSpec(t *testing.T) {
	if got := CompletionsFile(0.5); got != "eval_completions_coeff_0.5.json" {
		t.Errorf("CompletionsFile(0.5) = %q", got)
	}
	if got := CompletionsFile(1); got != "eval_completions_coeff_1.0.json" || !IsEvaluationFile(got) {
		t.Errorf("CompletionsFile(1) = %q", got)
	}
}
