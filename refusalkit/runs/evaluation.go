package runs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/tensorfile"
)

// SaveEvaluation writes layer_selection_scores.json, one
// eval_completions_coeff_{c}.json per coefficient, and eval_summary.json
// into dir's staging folder (EvalStagingDir), then publishes them together:
// any earlier evaluation's files are removed (eval_summary.json first), each
// new file is renamed into dir, eval_summary.json last, and the staging
// folder is removed. An evaluation killed before the end leaves the staging
// folder behind, so EvaluationState calls it interrupted.
func SaveEvaluation(dir string, ev *refusalkit.Evaluation, summary evalSummaryFile) error {
	stage := filepath.Join(dir, EvalStagingDir)
	if err := os.RemoveAll(stage); err != nil {
		return err
	}
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return err
	}
	names := []string{LayerSelectionFile}
	if err := tensorfile.WriteJSONAtomic(filepath.Join(stage, LayerSelectionFile), ev.Scores); err != nil {
		return err
	}
	if ev.Calibration != nil {
		if err := tensorfile.WriteJSONAtomic(filepath.Join(stage, CalibrationFile), ev.Calibration); err != nil {
			return err
		}
		names = append(names, CalibrationFile)
	}
	for _, c := range ev.Summary.Coefficients {
		name := CompletionsFile(c)
		if slices.Contains(names, name) {
			continue
		}
		if err := tensorfile.WriteJSONAtomic(filepath.Join(stage, name), ev.Completions[c]); err != nil {
			return err
		}
		names = append(names, name)
	}
	if err := tensorfile.WriteJSONAtomic(filepath.Join(stage, EvalSummaryFile), summary); err != nil {
		return err
	}
	names = append(names, EvalSummaryFile)
	// Publish. The staging folder stays until the last rename: a folder
	// caught in between is an interrupted evaluation, never a finished one.
	if err := os.Remove(filepath.Join(dir, EvalSummaryFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	old, err := EvaluationFiles(dir)
	if err != nil {
		return err
	}
	for _, name := range old {
		if !slices.Contains(names, name) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	for _, name := range names {
		if err := publishRename(filepath.Join(stage, name), filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("publish %s: %w", filepath.Join(dir, name), err)
		}
	}
	syncDir(dir)
	return os.Remove(stage)
}

// publishRename moves a staged file into place (a variable, so a test can
// stop the publication halfway, as a kill would).
var publishRename = os.Rename
