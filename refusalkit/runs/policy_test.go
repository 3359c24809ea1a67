package runs

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// RemoveStaleTemps removes what killed runs left half-written in a folder,
// of the project's own names only; Run.Extract and Run.Evaluate call it, so
// a script or notebook gets it as the commands do.
func TestRemoveStaleTemps(t *testing.T) {
	dir := t.TempDir()
	stale := []string{"." + MetadataFile + ".tmp-123", "." + EvalSummaryFile + ".tmp-9", "." + AblationSummaryFile + ".tmp-4",
		".write-test-77", filepath.Join(PartialDir, ".anything.tmp-5"), filepath.Join(ChartsDir, "."+ChartRefusalRates+".html.tmp42")}
	kept := []string{".notes.json.tmp-1", "notes.txt", filepath.Join(ChartsDir, ".mine.html.tmp3"), RefusalResponsesFile}
	for _, name := range slices.Concat(stale, kept) {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveStaleTemps(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range stale {
		if exists(filepath.Join(dir, name)) {
			t.Errorf("%s is still there", name)
		}
	}
	for _, name := range kept {
		if !exists(filepath.Join(dir, name)) {
			t.Errorf("%s was removed", name)
		}
	}
}

// A folder that cannot take a stage is a *FolderError, naming the folder
// and what it holds.
func TestFolderErrors(t *testing.T) {
	dir := t.TempDir()
	if err := CheckExtractionDir(dir, false, false); err != nil {
		t.Errorf("empty folder: %v", err)
	}
	os.WriteFile(filepath.Join(dir, RefusalResponsesFile), []byte("[]"), 0o644)
	err := CheckExtractionDir(dir, false, false)
	if e := (*FolderError)(nil); !errors.As(err, &e) || err.Error() != dir+" already holds a run ("+RefusalResponsesFile+"): choose another --output_dir or pass --overwrite" {
		t.Errorf("a run's file: %v", err)
	}
	if err := CheckExtractionDir(dir, true, false); err != nil {
		t.Errorf("with overwrite: %v", err)
	}
	if err := CheckExtractionDir(dir, false, true); err == nil || err.Error() != dir+" holds no interrupted run to resume: drop --resume" {
		t.Errorf("resume without a checkpoint: %v", err)
	}
	os.Mkdir(filepath.Join(dir, PartialDir), 0o755)
	if err := CheckVectorDir(dir); !errors.As(err, new(*FolderError)) {
		t.Errorf("an interrupted extraction as a vector folder: %v", err)
	}
}
