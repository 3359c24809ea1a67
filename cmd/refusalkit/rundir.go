package main

// Run-folder bookkeeping for the commands: one run per folder at a time
// (runs.LockDir), what each stage may find there, and removing an
// earlier run's files (--overwrite) and a killed run's temporary files by
// name, never anything else.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// writeProbe is the name pattern of checkWritable's probe file.
const writeProbe = ".write-test-*"

var writeProbeName = regexp.MustCompile(`^\.write-test-[0-9]+$`)

// inUse turns a held lock into the command's one-line message.
func inUse(err error, dir, what, remedy string) error {
	var e *runs.InUseError
	if errors.As(err, &e) {
		return usagef("%s%s is in use by a run in progress (%s): %s", what, dir, e.Holder(), remedy)
	}
	return err
}

// probeRunDir refuses, without creating anything, a folder that a run in
// progress holds.
func probeRunDir(dir string) error {
	return inUse(runs.ProbeLock(dir), dir, "", "wait for it to end or choose another --output_dir")
}

// openRunDir creates the output folder dir and takes its lock for command,
// before any work: a folder another run holds is refused, naming it.
func openRunDir(dir, command string) (*runs.Run, error) {
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return nil, usagef("output folder %s is a file: give a folder with --output_dir", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, usagef("cannot create output folder %s (%v): choose a writable --output_dir", dir, err)
	}
	run, err := runs.Open(dir, runs.Command(command))
	if err != nil {
		if err = inUse(err, dir, "", "wait for it to end or choose another --output_dir"); errors.As(err, new(usageError)) {
			return nil, err
		}
		return nil, usagef("output folder %s is not writable (%v): choose a writable --output_dir", dir, err)
	}
	return run, nil
}

// checkWritable checks the output folder takes new files.
func checkWritable(dir string) error {
	probe, err := os.CreateTemp(dir, writeProbe)
	if err != nil {
		return usagef("output folder %s is not writable (%v): choose a writable --output_dir", dir, err)
	}
	probe.Close()
	return os.Remove(probe.Name())
}

// extractDirState checks that the output folder can take this extraction:
// an interrupted run only with --resume or --overwrite, a finished run or an
// evaluation only with --overwrite, and --resume only an interrupted run.
func extractDirState(dir string, overwrite, resume bool) error {
	partial := dirHas(dir, runs.PartialDir)
	switch {
	case resume && !partial:
		var md runs.Metadata
		if readJSONFile(filepath.Join(dir, runs.MetadataFile), &md) {
			if md.Complete {
				return usagef("the run in %s is already complete (its vector is written): nothing to resume; pass --overwrite to replace it", dir)
			}
			return usagef("the run in %s finished without a refusal vector (too few kept responses: %d of %d compliant and %d of %d refusal kept; every response is saved there): "+
				"nothing to resume; to try again, pass --overwrite with another --refusal_instruction or more --n_samples and --n_completions",
				dir, md.NCompliantResponsesKept, md.NCompliantResponsesGenerated, md.NRefusalResponsesKept, md.NRefusalResponsesGenerated)
		}
		return usagef("%s holds no interrupted run to resume: drop --resume", dir)
	case resume || overwrite:
		return nil
	case partial:
		return usagef("%s holds an interrupted run: pass --resume to continue it or --overwrite to replace it", dir)
	}
	for _, name := range slices.Concat(runs.ExtractionFiles(), runs.AblationFiles()) {
		if dirHas(dir, name) {
			return usagef("%s already holds a run (%s): choose another --output_dir or pass --overwrite", dir, name)
		}
	}
	if state, marker := runs.EvaluationState(dir); state != runs.EvalNone {
		return usagef("%s already holds a run (%s): choose another --output_dir or pass --overwrite", dir, marker)
	}
	return nil
}

// checkVectorDir refuses a vector folder that a run in progress holds, or
// that holds an interrupted extraction.
func checkVectorDir(dir string) error {
	if err := inUse(runs.ProbeLock(dir), dir, "--vector_dir ", "wait for it to end"); err != nil {
		return err
	}
	if dirHas(dir, runs.PartialDir) {
		return usagef("--vector_dir %s holds an interrupted extraction (%s): finish it with `refusalkit extract --resume` (same flags) first", dir, runs.PartialDir)
	}
	return nil
}

// evalDirState checks that the output folder can take this evaluation: one
// that holds an evaluation, finished or interrupted, only with --overwrite.
func evalDirState(dir string, overwrite bool) error {
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return usagef("output folder %s is a file: give a folder with --output_dir", dir)
	}
	if overwrite {
		return nil
	}
	switch state, marker := runs.EvaluationState(dir); state {
	case runs.EvalComplete:
		return usagef("%s already holds a run (%s): choose another --output_dir or pass --overwrite", dir, marker)
	case runs.EvalInterrupted:
		return usagef("%s holds an interrupted evaluation (%s): pass --overwrite to replace it", dir, marker)
	}
	return nil
}

// removeStrayTemps removes the temporary files that killed runs of this
// stage and the stages after it left in dir, its checkpoint and its charts,
// and writability probes: only the project's own names.
func removeStrayTemps(dir string, extract bool) error {
	ours := func(name string) bool { return runs.IsEvaluationFile(name) || runs.IsAblationFile(name) }
	chartNames := slices.Concat(runs.EvaluationCharts, runs.AblationCharts)
	if extract {
		ours = func(name string) bool {
			return runs.IsExtractionFile(name) || runs.IsEvaluationFile(name) || runs.IsAblationFile(name)
		}
		chartNames = slices.Concat(runs.ExtractionCharts, runs.EvaluationCharts, runs.AblationCharts)
		if err := runs.RemoveStrayTemps(filepath.Join(dir, runs.PartialDir), func(string) bool { return true }); err != nil {
			return err
		}
	}
	return removeTemps(dir, ours, chartNames)
}

// removeAblationTemps removes what killed ablations left half-written in
// dir and its charts, and writability probes.
func removeAblationTemps(dir string) error {
	return removeTemps(dir, runs.IsAblationFile, runs.AblationCharts)
}

// removeTemps removes the temporary files of the names ours accepts in dir,
// of the named charts, and writability probes.
func removeTemps(dir string, ours func(string) bool, chartNames []string) error {
	if err := runs.RemoveStrayTemps(dir, ours); err != nil {
		return err
	}
	if err := runs.RemoveStrayTemps(filepath.Join(dir, runs.ChartsDir), func(name string) bool {
		return slices.ContainsFunc(chartNames, func(c string) bool { return name == c+".html" })
	}); err != nil {
		return err
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !e.IsDir() && writeProbeName.MatchString(e.Name()) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

// readJSONFile decodes path into v; false when it is absent or unreadable.
func readJSONFile(path string, v any) bool {
	data, err := os.ReadFile(path)
	return err == nil && json.Unmarshal(data, v) == nil
}

// readVectorDir reads the extraction folder of a command that applies its
// vector (evaluate, ablate), before any model loads: refused in one line
// when a run holds it, when it holds an interrupted extraction, or when it
// has no readable vector.
func readVectorDir(dir string) (*refusalkit.Extraction, error) {
	if err := checkVectorDir(dir); err != nil {
		return nil, err
	}
	x, err := runs.ReadExtraction(dir)
	if err != nil {
		return nil, usagef("%v", err)
	}
	if x.Vector == nil {
		_, err := runs.LoadVector(dir) // names the missing file and the fix
		return nil, usagef("%v", err)
	}
	return x, nil
}

// loadForVector loads the model of a command that applies vector v: a chat
// model that v fits, with room for maxNew tokens. A vector made with
// another model of the same shape is a warning, returned for the command
// to print with its own.
func loadForVector(command, modelPath, backend, dtype string, v *refusalkit.RefusalVector, maxNew int) (*models.Model, []string, error) {
	m, err := loadModel(modelPath, backend, dtype)
	if err != nil {
		return nil, nil, err
	}
	if err := needChat(m, command); err != nil {
		return nil, nil, err
	}
	if v == nil { // a control vector: its rows are read for this model's shape
		return m, nil, fitsContext(m, maxNew)
	}
	if err := v.CheckFits(m.Config); err != nil {
		return nil, nil, usagef("%v", err)
	}
	if err := fitsContext(m, maxNew); err != nil {
		return nil, nil, err
	}
	var warnings []string
	if v.Model != "" && v.Model != m.Alias() {
		warnings = append(warnings, fmt.Sprintf("the refusal vector was made with %q, not %q (same shape): its rows may mean nothing for this model", v.Model, m.Alias()))
	}
	return m, warnings, nil
}
