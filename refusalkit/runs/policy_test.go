package runs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/internal/testutil"
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
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

// A script's Run.Extract obeys the commands' rules when opened with their
// policy: Fresh refuses a finished or interrupted run with the commands'
// own *FolderError, touching nothing; Resume continues an interrupted run
// from its checkpoint to the uninterrupted run's responses, and refuses a
// finished one; Overwrite replaces it.
func TestExtractPolicies(t *testing.T) {
	m := testutil.TinyModel(t)
	cfg := refusalkit.ExtractConfig{NSamples: 4, GenerateConfig: smallGenerateConfig()}
	extract := func(dir string, policy OpenOption, opts ...refusalkit.Option) (*refusalkit.Extraction, error) {
		t.Helper()
		run, err := Open(dir, policy)
		if err != nil {
			t.Fatal(err)
		}
		defer run.Close()
		return run.Extract(m, cfg, opts...)
	}
	wantFolderError := func(err error, want string) {
		t.Helper()
		if e := (*FolderError)(nil); !errors.As(err, &e) || err.Error() != want {
			t.Errorf("got %v, want the *FolderError %q", err, want)
		}
	}
	whole := t.TempDir()
	var all int
	x, err := extract(whole, Fresh, counting(m, &all))
	if !errors.Is(err, refusalkit.ErrTooFewResponses) || x == nil { // the tiny model never refuses
		t.Fatalf("fresh extraction: %v", err)
	}
	before := listing(t, whole)
	_, err = extract(whole, Fresh)
	wantFolderError(err, whole+" already holds a run ("+MetadataFile+"): choose another --output_dir or pass --overwrite")
	_, err = extract(whole, Resume)
	if !errors.As(err, new(*FolderError)) || !strings.Contains(err.Error(), "finished without a refusal vector") {
		t.Errorf("resume of a finished run: %v", err)
	}
	if after := listing(t, whole); after != before {
		t.Errorf("a refused extraction touched the folder:\nbefore\n%s\nafter\n%s", before, after)
	}
	var again int
	if _, err := extract(whole, Overwrite, counting(m, &again)); !errors.Is(err, refusalkit.ErrTooFewResponses) || again != all {
		t.Errorf("overwrite: %d of %d batches generated, %v", again, all, err)
	}

	// Interrupted after two batches, as a killed run leaves it.
	cut := t.TempDir()
	var n int
	kill := refusalkit.WithGenerator(func(p [][]int32, o models.GenerateOptions) (*models.Generation, error) {
		if n++; n > 2 {
			return nil, errors.New("killed")
		}
		return m.GenerateIDs(p, o)
	})
	if _, err := extract(cut, Fresh, kill); err == nil {
		t.Fatal("the interrupted extraction did not fail")
	}
	stray := filepath.Join(cut, "."+MetadataFile+".tmp-77")
	os.WriteFile(stray, []byte("half"), 0o644)
	_, err = extract(cut, Fresh)
	wantFolderError(err, cut+" holds an interrupted run: pass --resume to continue it or --overwrite to replace it")
	var rest int
	y, err := extract(cut, Resume, counting(m, &rest))
	if !errors.Is(err, refusalkit.ErrTooFewResponses) || rest != all-2 {
		t.Errorf("resume: %d batches generated, want %d (%v)", rest, all-2, err)
	}
	if y == nil || len(y.Compliant) != len(x.Compliant) || !slices.Equal(y.Refusal[len(y.Refusal)-1].TokenIDs, x.Refusal[len(x.Refusal)-1].TokenIDs) {
		t.Errorf("the resumed run's responses differ from the uninterrupted run's")
	}
	if exists(stray) || exists(filepath.Join(cut, PartialDir)) {
		t.Errorf("the resumed run left the killed run's temporary file or its spent checkpoint")
	}
}

// A script's Run.Evaluate under Fresh refuses a folder that holds an
// evaluation, as the command does; under Overwrite it replaces it.
func TestEvaluatePolicies(t *testing.T) {
	m := testutil.TinyModel(t)
	x, cfg := evalFixture(t, m)
	dir := t.TempDir()
	evaluate := func(policy OpenOption, cfg refusalkit.EvalConfig) (*refusalkit.Evaluation, error) {
		t.Helper()
		run, err := Open(dir, policy)
		if err != nil {
			t.Fatal(err)
		}
		defer run.Close()
		return run.Evaluate(m, x, cfg)
	}
	if _, err := evaluate(Fresh, cfg); err != nil {
		t.Fatal(err)
	}
	_, err := evaluate(Fresh, cfg)
	if e := (*FolderError)(nil); !errors.As(err, &e) || err.Error() != dir+" already holds a run ("+EvalSummaryFile+"): choose another --output_dir or pass --overwrite" {
		t.Errorf("fresh evaluation of an evaluated folder: %v", err)
	}
	other := cfg
	other.Coefficients = []float64{2}
	if _, err := evaluate(Overwrite, other); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(dir, CompletionsFile(1))) || !exists(filepath.Join(dir, CompletionsFile(2))) {
		t.Errorf("overwrite kept the earlier evaluation's files")
	}
}

// listing is every path under dir with its size and modification time
// (but the lock file's, and the folders' times, which taking the lock changes).
func listing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		switch {
		case err != nil || p == dir || info.Name() == LockFile:
		case info.IsDir():
			fmt.Fprintf(&b, "%s/\n", p)
		default:
			fmt.Fprintf(&b, "%s %d %d\n", p, info.Size(), info.ModTime().UnixNano())
		}
		return nil
	})
	return b.String()
}

// A script's Run.Ablate under Fresh refuses a folder that holds an
// ablation, as the command does, touching nothing; under Overwrite it
// replaces it.
func TestAblatePolicies(t *testing.T) {
	if testing.Short() {
		t.Skip("generates JailbreakBench completions on the tiny model")
	}
	m := testutil.TinyModel(t)
	x, _ := evalFixture(t, m)
	dir := t.TempDir()
	layer := 1
	cfg := refusalkit.AblateConfig{Layer: &layer, MaxNewTokens: 2, NInduced: 1, NHarmless: 1, NHarmful: 2}
	ablate := func(policy OpenOption) error {
		t.Helper()
		run, err := Open(dir, policy)
		if err != nil {
			t.Fatal(err)
		}
		defer run.Close()
		_, _, err = run.Ablate(m, x, cfg, AblateOptions{Direction: refusalkit.DirectionConfig{Harmful: []string{"a", "b"}}})
		return err
	}
	if err := ablate(Fresh); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{AblationSummaryFile, AblationCompletionsFile, DirectionCosinesFile} {
		if !exists(filepath.Join(dir, name)) {
			t.Errorf("%s was not written", name)
		}
	}
	before := listing(t, dir)
	err := ablate(Fresh)
	if e := (*FolderError)(nil); !errors.As(err, &e) || err.Error() != dir+" already holds an ablation ("+AblationSummaryFile+"): choose another --output_dir or pass --overwrite" {
		t.Errorf("fresh ablation of an ablated folder: %v", err)
	}
	if after := listing(t, dir); after != before {
		t.Errorf("a refused ablation changed the folder:\n%s\nnow\n%s", before, after)
	}
	if err := ablate(Overwrite); err != nil {
		t.Fatal(err)
	}
}
