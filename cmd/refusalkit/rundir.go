package main

// The commands' side of run folders: the rules themselves (what each stage
// may find there, a killed run's temporary files) are package runs'
// (policy.go); here they become one-line usage errors.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// inUse turns a held lock into the command's one-line message.
func inUse(err error, dir, what, remedy string) error {
	var e *runs.InUseError
	if errors.As(err, &e) {
		return usagef("%s%s is in use by a run in progress (%s): %s", what, dir, e.Holder(), remedy)
	}
	return err
}

// folder turns a run folder that cannot take the stage into a usage error.
func folder(err error) error {
	if e := (*runs.FolderError)(nil); errors.As(err, &e) {
		return usagef("%s", e.Error())
	}
	return err
}

// probeRunDir refuses, without creating anything, a folder that a run in
// progress holds.
func probeRunDir(dir string) error {
	return inUse(runs.ProbeLock(dir), dir, "", "wait for it to end or choose another --output_dir")
}

// openRunDir creates the output folder dir and takes its lock for command,
// before any work: a folder another run holds is refused, naming it. opts
// set the run's policy for what the folder already holds.
func openRunDir(dir, command string, opts ...runs.OpenOption) (*runs.Run, error) {
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return nil, usagef("output folder %s is a file: give a folder with --output_dir", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, usagef("cannot create output folder %s (%v): choose a writable --output_dir", dir, err)
	}
	run, err := runs.Open(dir, append(opts, runs.Command(command))...)
	if err != nil {
		if err = inUse(err, dir, "", "wait for it to end or choose another --output_dir"); errors.As(err, new(usageError)) {
			return nil, err
		}
		return nil, usagef("output folder %s is not writable (%v): choose a writable --output_dir", dir, err)
	}
	return run, nil
}

// checkWritable checks the output folder takes new files.
func checkWritable(dir string) error { return folder(runs.CheckWritable(dir)) }

// extractDirState checks that the output folder can take this extraction
// (runs.CheckExtractionDir).
func extractDirState(dir string, overwrite, resume bool) error {
	return folder(runs.CheckExtractionDir(dir, overwrite, resume))
}

// checkVectorDir refuses a vector folder that a run in progress holds, or
// that holds an interrupted extraction.
func checkVectorDir(dir string) error {
	if err := inUse(runs.ProbeLock(dir), dir, "--vector_dir ", "wait for it to end"); err != nil {
		return err
	}
	return folder(runs.CheckVectorDir(dir))
}

// evalDirState checks that the output folder can take this evaluation
// (runs.CheckEvaluationDir).
func evalDirState(dir string, overwrite bool) error {
	return folder(runs.CheckEvaluationDir(dir, overwrite))
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
func loadForVector(command, modelPath, backend, dtype string, devices int, v *refusalkit.RefusalVector, maxNew int) (*models.Model, []string, error) {
	m, err := loadModel(modelPath, backend, dtype, devices)
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
