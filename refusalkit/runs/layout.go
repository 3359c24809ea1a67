package runs

// What each stage writes in a run folder, by name, so that --overwrite
// removes exactly an earlier run's files (never a user's own), a killed
// run's temporary files can be told from anything else, and an evaluation
// killed while publishing its files is recognised.

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
)

// ExtractionFiles lists what extract writes in a run folder, besides its
// charts: metadata.json first (the completion marker), then the response
// files, the vector and the checkpoint folder.
func ExtractionFiles() []string {
	return []string{MetadataFile, ShardFile, CompliantResponsesFile, RefusalResponsesFile, FilteredCompliantResponsesFile,
		FilteredRefusalResponsesFile, VectorPTFile, VectorSafetensorsFile, ShardSumsFile, PartialDir}
}

// IsExtractionFile reports whether name is one of ExtractionFiles.
func IsExtractionFile(name string) bool {
	for _, n := range ExtractionFiles() {
		if n == name {
			return true
		}
	}
	return false
}

// completionsName matches CompletionsFile's names (refusalkit.CoeffKey never writes an exponent).
var completionsName = regexp.MustCompile(`^eval_completions_coeff_-?[0-9]+(\.[0-9]+)?\.json$`)

// IsEvaluationFile reports whether name is one evaluate writes:
// layer_selection_scores.json, eval_summary.json, calibration.json, eval_completions_coeff_{c}.json.
func IsEvaluationFile(name string) bool {
	return name == LayerSelectionFile || name == EvalSummaryFile || name == CalibrationFile || completionsName.MatchString(name)
}

// AblationFiles lists what ablate writes in a run folder, besides its
// charts: ablation_summary.json first (the completion marker).
func AblationFiles() []string {
	return []string{AblationSummaryFile, AblationCompletionsFile, DirectionCosinesFile, HarmfulHarmlessDirectionFile, DirectionLayerScoresFile}
}

// IsAblationFile reports whether name is one of AblationFiles.
func IsAblationFile(name string) bool {
	for _, n := range AblationFiles() {
		if n == name {
			return true
		}
	}
	return false
}

// AblationState tells what dir holds of an ablation (EvalNone, EvalComplete
// with ablation_summary.json, EvalInterrupted with other ablation files
// only), and the file that shows it.
func AblationState(dir string) (EvalState, string) {
	for i, name := range AblationFiles() {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			if i == 0 {
				return EvalComplete, name
			}
			return EvalInterrupted, name
		}
	}
	return EvalNone, ""
}

// RemoveAblation removes every file ablate wrote in dir (AblationFiles,
// ablation_summary.json first), and nothing else.
func RemoveAblation(dir string) error {
	for _, name := range AblationFiles() {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// EvaluationFiles returns the names of the evaluation files in dir, sorted.
func EvaluationFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && IsEvaluationFile(e.Name()) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// EvalState says what a folder holds of an evaluation.
type EvalState int

const (
	EvalNone        EvalState = iota // no evaluation file
	EvalComplete                     // eval_summary.json, nothing left staged
	EvalInterrupted                  // a staging folder, or evaluation files without eval_summary.json
)

// EvaluationState tells what dir holds of an evaluation, and the file or
// folder that shows it.
func EvaluationState(dir string) (EvalState, string) {
	if _, err := os.Stat(filepath.Join(dir, EvalStagingDir)); err == nil {
		return EvalInterrupted, EvalStagingDir
	}
	if _, err := os.Stat(filepath.Join(dir, EvalSummaryFile)); err == nil {
		return EvalComplete, EvalSummaryFile
	}
	if names, _ := EvaluationFiles(dir); len(names) > 0 {
		return EvalInterrupted, names[0]
	}
	return EvalNone, ""
}

// RemoveEvaluation removes every file an evaluation wrote in dir, and
// nothing else: the staging folder and eval_summary.json first, so a folder
// caught halfway never looks evaluated, then the rest.
func RemoveEvaluation(dir string) error {
	for _, name := range []string{EvalStagingDir, EvalSummaryFile} {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	names, err := EvaluationFiles(dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// RemoveExtraction removes every file extract wrote in dir (ExtractionFiles,
// metadata.json first), and nothing else.
func RemoveExtraction(dir string) error {
	for _, name := range ExtractionFiles() {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// tempName matches the temporary names files are written through before
// their rename: tensorfile.WriteFileAtomic's ".<name>.tmp-<digits>" and the charts'
// ".<name>.tmp<digits>".
var tempName = regexp.MustCompile(`^\.(.+)\.tmp-?[0-9]+$`)

// RemoveStrayTemps removes from folder the temporary files of the names
// ours accepts: what a run killed before its rename leaves. Other files are
// left alone. Call it only while holding the run folder's lock, so no
// other run is writing them.
func RemoveStrayTemps(folder string, ours func(name string) bool) error {
	entries, err := os.ReadDir(folder)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		m := tempName.FindStringSubmatch(e.Name())
		if e.IsDir() || m == nil || !ours(m[1]) {
			continue
		}
		if err := os.Remove(filepath.Join(folder, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// syncDir makes renames in dir durable; not supported everywhere, so errors are ignored.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
