package runs

// What a stage may find in a run folder before it writes there, and what a
// killed run leaves behind: the rules every caller gets, the commands, a
// notebook and a script alike. The remedies in the messages name the
// commands' flags (--overwrite, --resume, --output_dir), which is how most
// readers meet them; a library caller's equivalents are the OpenOptions
// Overwrite and Resume (and, for a notebook, ReplaceStale), which Run.Extract
// and Run.Evaluate apply with these same checks.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
)

// FolderError is a run folder that cannot take the stage asked of it: the
// message names the folder, what it holds and the remedy. The commands
// report it as a usage error (exit 2), before any work.
type FolderError struct{ msg string }

func (e *FolderError) Error() string { return e.msg }

func folderErrorf(format string, a ...any) error { return &FolderError{fmt.Sprintf(format, a...)} }

// CheckExtractionDir checks that dir can take a new extraction: an
// interrupted run only with resume or overwrite, a finished run, an
// evaluation or an ablation only with overwrite, and resume only an
// interrupted run.
func CheckExtractionDir(dir string, overwrite, resume bool) error {
	partial := exists(filepath.Join(dir, PartialDir))
	switch {
	case resume && !partial:
		var md Metadata
		if ReadJSON(filepath.Join(dir, MetadataFile), &md) == nil {
			if md.Complete {
				return folderErrorf("the run in %s is already complete (its vector is written): nothing to resume; pass --overwrite to replace it", dir)
			}
			return folderErrorf("the run in %s finished without a refusal vector (too few kept responses: %d of %d compliant and %d of %d refusal kept; every response is saved there): "+
				"nothing to resume; to try again, pass --overwrite with another --refusal_instruction or more --n_samples and --n_completions",
				dir, md.NCompliantResponsesKept, md.NCompliantResponsesGenerated, md.NRefusalResponsesKept, md.NRefusalResponsesGenerated)
		}
		return folderErrorf("%s holds no interrupted run to resume: drop --resume", dir)
	case resume || overwrite:
		return nil
	case partial:
		return folderErrorf("%s holds an interrupted run: pass --resume to continue it or --overwrite to replace it", dir)
	}
	for _, name := range slices.Concat(ExtractionFiles(), AblationFiles()) {
		if exists(filepath.Join(dir, name)) {
			return folderErrorf("%s already holds a run (%s): choose another --output_dir or pass --overwrite", dir, name)
		}
	}
	if state, marker := EvaluationState(dir); state != EvalNone {
		return folderErrorf("%s already holds a run (%s): choose another --output_dir or pass --overwrite", dir, marker)
	}
	return nil
}

// CheckEvaluationDir checks that dir can take a new evaluation: one that
// holds an evaluation, finished or interrupted, only with overwrite.
func CheckEvaluationDir(dir string, overwrite bool) error {
	return checkStageDir(dir, overwrite, EvaluationState, "a run", "evaluation")
}

// CheckAblationDir checks that dir can take a new ablation: one that holds
// an ablation, finished or interrupted, only with overwrite.
func CheckAblationDir(dir string, overwrite bool) error {
	return checkStageDir(dir, overwrite, AblationState, "an ablation", "ablation")
}

// checkStageDir refuses, without overwrite, a folder whose state (what it
// holds of the stage) is finished or interrupted; held names a finished
// one, stage the stage.
func checkStageDir(dir string, overwrite bool, state func(string) (EvalState, string), held, stage string) error {
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return folderErrorf("output folder %s is a file: give a folder with --output_dir", dir)
	}
	if overwrite {
		return nil
	}
	switch s, marker := state(dir); s {
	case EvalComplete:
		return folderErrorf("%s already holds %s (%s): choose another --output_dir or pass --overwrite", dir, held, marker)
	case EvalInterrupted:
		return folderErrorf("%s holds an interrupted %s (%s): pass --overwrite to replace it", dir, stage, marker)
	}
	return nil
}

// CheckVectorDir refuses a folder whose vector a stage would apply while it
// holds an interrupted extraction (a run in progress there is ProbeLock's
// to report).
func CheckVectorDir(dir string) error {
	if exists(filepath.Join(dir, PartialDir)) {
		return folderErrorf("--vector_dir %s holds an interrupted extraction (%s): finish it with `refusalkit extract --resume` (same flags) first", dir, PartialDir)
	}
	return nil
}

// writeProbe is the name pattern of CheckWritable's probe file.
const writeProbe = ".write-test-*"

var writeProbeName = regexp.MustCompile(`^\.write-test-[0-9]+$`)

// CheckWritable checks that dir takes new files, before any work.
func CheckWritable(dir string) error {
	probe, err := os.CreateTemp(dir, writeProbe)
	if err != nil {
		return folderErrorf("output folder %s is not writable (%v): choose a writable --output_dir", dir, err)
	}
	probe.Close()
	return os.Remove(probe.Name())
}

// RemoveStaleTemps removes what killed runs left half-written in dir: the
// temporary files of every stage's files, of its checkpoint and of its
// charts, and writability probes; only the project's own names, never
// anything else. Call it holding the folder's lock (no other run is writing
// them), once the stage's checks have passed: a refused stage touches
// nothing. Run.Extract and Run.Evaluate call it before their work.
func RemoveStaleTemps(dir string) error {
	ours := func(name string) bool {
		return IsExtractionFile(name) || IsEvaluationFile(name) || IsAblationFile(name)
	}
	if err := RemoveStrayTemps(dir, ours); err != nil {
		return err
	}
	if err := RemoveStrayTemps(filepath.Join(dir, PartialDir), func(string) bool { return true }); err != nil {
		return err
	}
	chartNames := slices.Concat(ExtractionCharts, EvaluationCharts, AblationCharts)
	if err := RemoveStrayTemps(filepath.Join(dir, ChartsDir), func(name string) bool {
		return slices.ContainsFunc(chartNames, func(c string) bool { return name == c+".html" })
	}); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() && writeProbeName.MatchString(e.Name()) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
