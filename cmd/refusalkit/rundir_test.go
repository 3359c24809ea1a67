package main

// Run-folder bookkeeping: one run per folder at a time, checkpoints bound to
// what made them, nothing stale left by --overwrite, killed runs recognised.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildOut  []byte
)

// commandBinary builds the command once for the tests that run it as a
// separate process (to be killed, or to hold a run folder's lock).
func commandBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() || runtime.GOOS != "linux" {
		t.Skip("builds the command and runs it as a separate process")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "refusalkit-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "refusalkit")
		buildOut, buildErr = exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build: %v\n%s", buildErr, buildOut)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		_ = os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// longExtract is an extraction of the tiny model that runs for a few
// seconds (60 batches per mode), long enough to act on while it runs.
func longExtract(dir string, extra ...string) []string {
	return append([]string{"extract", "--model_path", "tiny-random", "--backend", "go", "--n_samples", "40",
		"--n_completions", "3", "--max_new_tokens", "40", "--generation_batch_size", "4", "--output_dir", dir}, extra...)
}

// startExtract starts the command and returns once it has checkpointed at
// least n compliant batches; done is closed when it exits.
func startExtract(t *testing.T, bin string, args []string, n int) (cmd *exec.Cmd, done chan struct{}) {
	t.Helper()
	cmd = exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	dir := args[slices.Index(args, "--output_dir")+1]
	deadline := time.Now().Add(60 * time.Second)
	for {
		batches, _ := filepath.Glob(filepath.Join(dir, runs.PartialDir, "compliant-*.json"))
		if len(batches) >= n {
			return cmd, done
		}
		select {
		case <-done:
			t.Skip("the run finished before it could be acted on")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint appeared")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runBinary runs the built command and returns its exit status and stderr:
// a checkpoint is resumed by the code that wrote it (CodeVersion).
func runBinary(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stderr strings.Builder
	cmd := exec.Command(commandBinary(t), args...)
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// killedExtract leaves dir as a run killed after n checkpointed batches.
func killedExtract(t *testing.T, args []string, n int) {
	t.Helper()
	cmd, done := startExtract(t, commandBinary(t), args, n)
	_ = cmd.Process.Kill()
	<-done
	dir := args[slices.Index(args, "--output_dir")+1]
	if _, err := os.Stat(filepath.Join(dir, runs.MetadataFile)); err == nil {
		t.Skip("the run finished before it could be killed")
	}
}

func wantRefused(t *testing.T, code int, stderr string, wants ...string) {
	t.Helper()
	if code != 2 {
		t.Errorf("exit %d, want 2 (stderr %q)", code, stderr)
	}
	if n := strings.Count(strings.TrimSpace(stderr), "\n"); n > 0 {
		t.Errorf("message spans %d lines: %q", n+1, stderr)
	}
	for _, w := range wants {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q lacks %q", stderr, w)
		}
	}
}

// listing returns every path under dir with its size and modification time
// (but for the lock file a killed run leaves, which means nothing, and the
// folders' times).
func listing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		switch {
		case err != nil || p == dir || info.Name() == runs.LockFile:
		case info.IsDir(): // taking and releasing the lock changes a folder's time
			fmt.Fprintf(&b, "%s/\n", p)
		default:
			fmt.Fprintf(&b, "%s %d %d\n", p, info.Size(), info.ModTime().UnixNano())
		}
		return nil
	})
	return b.String()
}

// Finding 1a: a second run into a folder that a first run is writing is
// refused before any work, naming the holder's pid, and is not told the run
// was interrupted; the first run's files are its own.
func TestSecondRunRefusedWhileFirstWrites(t *testing.T) {
	bin := commandBinary(t)
	dir := filepath.Join(t.TempDir(), "run")
	first, done := startExtract(t, bin, longExtract(dir), 1)
	pid := fmt.Sprintf("pid %d", first.Process.Pid)

	select {
	case <-done:
		t.Skip("the first run finished before the second one started")
	default:
	}
	code, stderr := runCaptured(t, longExtract(dir, "--overwrite", "--seed", "7")...)
	wantRefused(t, code, stderr, "in progress", pid)
	for _, extra := range [][]string{nil, {"--resume"}} {
		code, stderr := runCaptured(t, longExtract(dir, extra...)...)
		wantRefused(t, code, stderr, "in progress", pid)
		if strings.Contains(stderr, "interrupted") {
			t.Errorf("a run in progress is called interrupted: %q", stderr)
		}
	}
	<-done
	var md runs.Metadata
	data, err := os.ReadFile(filepath.Join(dir, runs.MetadataFile))
	if err != nil {
		t.Fatalf("the first run did not finish: %v", err)
	}
	if err := json.Unmarshal(data, &md); err != nil || md.Seed != 42 || md.NQueries != 40 {
		t.Errorf("metadata of the first run: seed %d, %d queries (%v)", md.Seed, md.NQueries, err)
	}
	if _, err := os.Stat(filepath.Join(dir, runs.LockFile)); err == nil {
		t.Errorf("the lock file outlived the run")
	}
}

// Findings 1b and 4: --resume checks that the checkpoint belongs to this
// run: a changed setting is named with both values, a changed dataset file
// (same path) is caught, and nothing is touched; with everything the same
// the run resumes.
func TestResumeVerifiesTheCheckpointDigest(t *testing.T) {
	tmp := t.TempDir()
	dataset := filepath.Join(tmp, "instructions.jsonl")
	writeDataset := func(format string) {
		var b strings.Builder
		for i := range 80 {
			fmt.Fprintf(&b, "{\"instruction\": "+format+"}\n", i)
		}
		if err := os.WriteFile(dataset, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeDataset(`"Describe item number %d in one sentence."`)
	dir := filepath.Join(tmp, "run")
	args := func(extra ...string) []string {
		return append([]string{"extract", "--model_path", "tiny-random", "--backend", "go", "--dataset", dataset,
			"--n_samples", "40", "--n_completions", "3", "--max_new_tokens", "40", "--generation_batch_size", "4",
			"--output_dir", dir}, extra...)
	}
	killedExtract(t, args(), 2)
	stray := filepath.Join(dir, ".metadata.json.tmp-77") // a refused run removes nothing, not even this
	if err := os.WriteFile(stray, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := listing(t, dir)

	code, stderr := runBinary(t, args("--resume", "--seed", "7")...)
	wantRefused(t, code, stderr, "seed", "42", "7", "--overwrite")

	writeDataset(`"Name the colour of thing %d."`) // same path, other content
	code, stderr = runBinary(t, args("--resume")...)
	wantRefused(t, code, stderr, "dataset", "--overwrite")
	if after := listing(t, dir); after != before {
		t.Errorf("a refused resume touched the folder:\nbefore\n%s\nafter\n%s", before, after)
	}

	writeDataset(`"Describe item number %d in one sentence."`)
	code, stderr = runBinary(t, args("--resume")...)
	if code != 1 || !strings.Contains(stderr, "too few kept responses") {
		t.Errorf("resume with the same flags and files: exit %d, %q", code, stderr)
	}
}

// Finding 4: --resume on a run that ended without a vector says so, and
// what to do, instead of "already complete".
func TestResumeAfterTooFewSaysWhatHappened(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	args := []string{"extract", "--model_path", "tiny-random", "--backend", "go", "--n_samples", "2",
		"--n_completions", "2", "--max_new_tokens", "4", "--output_dir", dir}
	if code, stderr := runCaptured(t, args...); code != 1 {
		t.Fatalf("exit %d, want 1 (the tiny model keeps no refusal): %s", code, stderr)
	}
	code, stderr := runCaptured(t, append(args, "--resume")...)
	wantRefused(t, code, stderr, "without a refusal vector", "--overwrite")
	if strings.Contains(stderr, "already complete") {
		t.Errorf("a run that made no vector is called complete: %q", stderr)
	}
}

// evaluatedRun makes a run folder as extract and evaluate leave it (the
// tiny model never refuses, so the kept sets are stood in), with charts,
// plus files of the user's own.
func evaluatedRun(t *testing.T) (dir string, userFiles []string) {
	t.Helper()
	b, err := models.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	m, err := models.Load("tiny-random", b)
	if err != nil {
		t.Fatal(err)
	}
	cfg := refusalkit.ExtractConfig{NSamples: 3, GenerateConfig: refusalkit.GenerateConfig{NCompletions: 2, MaxNewTokens: 4}}
	x, _ := refusalkit.Extract(m, cfg)
	if x == nil {
		t.Fatal("extract failed")
	}
	x.FilteredRefusal, x.FilteredCompliant = x.Refusal[:3], x.Compliant[:3]
	if x.Vector, err = refusalkit.ComputeRefusalVector(m.Alias(), x.FilteredRefusal, x.FilteredCompliant); err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(t.TempDir(), "run")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run, err := runs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := run.SaveExtraction(m, x); err != nil {
		t.Fatal(err)
	}
	run.Close()
	if code, stderr := runCaptured(t, evaluateArgs(dir, "0", "1")...); code != 0 {
		t.Fatalf("evaluate: exit %d: %s", code, stderr)
	}
	userFiles = []string{"notes.txt", "eval_completions_notes.txt", ".notes.txt.tmp-5", filepath.Join("charts", "mine.html")}
	for _, name := range userFiles {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, userFiles
}

func evaluateArgs(dir string, coeffs ...string) []string {
	return append([]string{"evaluate", "--model_path", "tiny-random", "--backend", "go", "--vector_dir", dir,
		"--n_validation_samples", "2", "--n_test_samples", "2", "--max_new_tokens", "4", "--batch_size", "2",
		"--refusal_tokens", "5,6", "--coefficients"}, coeffs...)
}

func exists(dir, name string) bool {
	_, err := os.Stat(filepath.Join(dir, name))
	return err == nil
}

// Finding 2: --overwrite removes what the earlier run of that stage and of
// the stages after it wrote, and nothing of the user's.
func TestOverwriteLeavesNoStaleFiles(t *testing.T) {
	dir, userFiles := evaluatedRun(t)
	for _, name := range []string{runs.CompletionsFile(0), runs.CompletionsFile(1), runs.EvalSummaryFile,
		runs.LayerSelectionFile, "charts/layer_scores.html", "charts/refusal_rates.html", "charts/vector_norms.html"} {
		if !exists(dir, name) {
			t.Fatalf("the evaluated run lacks %s", name)
		}
	}

	code, stderr := runCaptured(t, append(evaluateArgs(dir, "2"), "--overwrite")...)
	if code != 0 {
		t.Fatalf("evaluate --overwrite: exit %d: %s", code, stderr)
	}
	for _, name := range []string{runs.CompletionsFile(0), runs.CompletionsFile(1)} {
		if exists(dir, name) {
			t.Errorf("evaluate --overwrite --coefficients 2 left the earlier evaluation's %s", name)
		}
	}
	for _, name := range []string{runs.CompletionsFile(2), runs.EvalSummaryFile, runs.VectorSafetensorsFile, runs.MetadataFile} {
		if !exists(dir, name) {
			t.Errorf("evaluate --overwrite: %s is missing", name)
		}
	}

	code, stderr = runCaptured(t, "extract", "--model_path", "tiny-random", "--backend", "go", "--n_samples", "2",
		"--n_completions", "2", "--max_new_tokens", "4", "--output_dir", dir, "--overwrite")
	if code != 1 || !strings.Contains(stderr, "too few kept responses") {
		t.Fatalf("extract --overwrite: exit %d: %s", code, stderr)
	}
	for _, name := range []string{runs.CompletionsFile(2), runs.EvalSummaryFile, runs.LayerSelectionFile,
		runs.VectorSafetensorsFile, runs.VectorPTFile, "charts/layer_scores.html", "charts/refusal_rates.html",
		"charts/vector_norms.html", "charts/cosine_similarity.html"} {
		if exists(dir, name) {
			t.Errorf("extract --overwrite left the earlier run's %s", name)
		}
	}
	for _, name := range append([]string{runs.MetadataFile, "charts/kept_vs_generated.html"}, userFiles...) {
		if !exists(dir, name) {
			t.Errorf("%s is missing after extract --overwrite", name)
		}
	}
}

// Finding 3: an evaluation killed while publishing its files is recognised
// as interrupted (in the layout earlier versions left, and in the staging
// folder's), left untouched, and replaced by --overwrite, which also removes
// the killed run's temporary files.
func TestKilledEvaluationIsRecognised(t *testing.T) {
	dir, userFiles := evaluatedRun(t)
	// Killed at its last rename: every file but the summary, and its temporary file.
	if err := os.Remove(filepath.Join(dir, runs.EvalSummaryFile)); err != nil {
		t.Fatal(err)
	}
	tmpFile := filepath.Join(dir, ".eval_summary.json.tmp-4242")
	if err := os.WriteFile(tmpFile, []byte(`{"model_pa`), 0o644); err != nil {
		t.Fatal(err)
	}
	before := listing(t, dir)
	code, stderr := runCaptured(t, evaluateArgs(dir, "0", "1")...)
	wantRefused(t, code, stderr, "interrupted evaluation", "--overwrite")
	if after := listing(t, dir); after != before {
		t.Errorf("a refused evaluate touched the folder:\nbefore\n%s\nafter\n%s", before, after)
	}

	code, stderr = runCaptured(t, append(evaluateArgs(dir, "0", "1"), "--overwrite")...)
	if code != 0 {
		t.Fatalf("evaluate --overwrite: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(tmpFile); err == nil {
		t.Errorf("the killed evaluation's temporary file is still there")
	}
	for _, name := range append([]string{runs.EvalSummaryFile}, userFiles...) {
		if !exists(dir, name) {
			t.Errorf("%s is missing after evaluate --overwrite", name)
		}
	}

	// Killed while publishing from the staging folder.
	staged := filepath.Join(dir, runs.EvalStagingDir)
	if err := os.MkdirAll(staged, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, runs.EvalSummaryFile), filepath.Join(staged, runs.EvalSummaryFile)); err != nil {
		t.Fatal(err)
	}
	code, stderr = runCaptured(t, evaluateArgs(dir, "0", "1")...)
	wantRefused(t, code, stderr, "interrupted evaluation", "--overwrite")
}

// Finding 3: temporary files of killed runs are removed by the next run
// (only names of the project's own temporary files).
func TestStrayTemporaryFilesRemovedByTheNextRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	args := longExtract(dir)
	killedExtract(t, args, 2)
	stray := []string{".metadata.json.tmp-77", ".refusal_vector.safetensors.tmp-12", filepath.Join(runs.PartialDir, ".compliant-000040.json.tmp-88"),
		filepath.Join(runs.PartialDir, ".compliant-000040.f64.tmp-89"), filepath.Join("charts", ".vector_norms.html.tmp123"), ".write-test-99"}
	mine := []string{".notes.txt.tmp-5", "x.tmp-1"}
	if err := os.MkdirAll(filepath.Join(dir, "charts"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range append(stray, mine...) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, stderr := runBinary(t, append(args, "--resume")...)
	if code != 1 || !strings.Contains(stderr, "too few kept responses") {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	for _, name := range stray {
		if exists(dir, name) {
			t.Errorf("the killed run's %s is still there", name)
		}
	}
	for _, name := range mine {
		if !exists(dir, name) {
			t.Errorf("the user's %s was removed", name)
		}
	}
}

// The other messages about a run folder's state: one line each, exit 2,
// nothing touched.
func TestRunFolderMessages(t *testing.T) {
	tmp := t.TempDir()
	mk := func(name string, files ...string) string {
		dir := filepath.Join(tmp, name)
		for _, f := range append(files, "") {
			p := filepath.Join(dir, f)
			if strings.HasSuffix(f, "/") || f == "" {
				_ = os.MkdirAll(p, 0o755)
				continue
			}
			_ = os.MkdirAll(filepath.Dir(p), 0o755)
			_ = os.WriteFile(p, []byte(`{"complete": true}`), 0o644)
		}
		return dir
	}
	extract := func(dir string, extra ...string) []string {
		return append([]string{"extract", "--model_path", "tiny-random", "--backend", "go", "--n_samples", "2",
			"--n_completions", "2", "--max_new_tokens", "4", "--output_dir", dir}, extra...)
	}
	empty := mk("empty")
	complete := mk("complete", runs.MetadataFile)
	v := &refusalkit.RefusalVector{Model: "tiny-random-llama", NLayers: 3, DModel: 32, Data: make([][]float32, 4)}
	for i := range v.Data {
		v.Data[i] = make([]float32, 32)
	}
	if err := runs.SaveVector(complete, v); err != nil {
		t.Fatal(err)
	}
	evalOnly := mk("eval-only", runs.EvalSummaryFile)
	interruptedExtract := mk("interrupted-extract", runs.PartialDir+"/")
	held := mk("held")
	lock, err := runs.LockDir(held, "extract") // another open file: another owner, even in this process
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	pid := fmt.Sprintf("pid %d", os.Getpid())

	cases := []struct {
		args []string
		want []string
	}{
		{extract(empty, "--resume"), []string{"holds no interrupted run to resume: drop --resume"}},
		{extract(complete, "--resume"), []string{"is already complete", "nothing to resume"}},
		{extract(evalOnly), []string{"already holds a run (eval_summary.json)"}},
		{extract(interruptedExtract), []string{"holds an interrupted run: pass --resume"}},
		{extract(held, "--overwrite"), []string{"in progress", pid, "--output_dir"}},
		{evaluateArgs(interruptedExtract, "1"), []string{"--vector_dir", "holds an interrupted extraction", "extract --resume"}},
		{evaluateArgs(held, "1"), []string{"--vector_dir " + held + " is in use by a run in progress", pid}},
		{append(evaluateArgs(complete, "1"), "--output_dir", held), []string{held + " is in use by a run in progress", pid}},
		{[]string{"charts", "--run_dir", held}, []string{"--run_dir " + held + " is in use by a run in progress", pid}},
	}
	before := listing(t, tmp)
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, stderr := runCaptured(t, c.args...)
			wantRefused(t, code, stderr, c.want...)
		})
	}
	if after := listing(t, tmp); after != before {
		t.Errorf("a refused run touched a folder:\nbefore\n%s\nafter\n%s", before, after)
	}
}
