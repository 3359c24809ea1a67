package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// An extraction killed mid-run and continued with --resume gives the same
// files, byte for byte, as an uninterrupted run, without regenerating the
// batches that were finished.
func TestResumeAfterKill(t *testing.T) {
	if testing.Short() || runtime.GOOS != "linux" {
		t.Skip("builds and kills the command")
	}
	bin := filepath.Join(t.TempDir(), "refusalkit")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	tmp := t.TempDir()
	args := func(dir string, extra ...string) []string {
		return append([]string{"extract", "--model_path", "tiny-random", "--backend", "go", "--n_samples", "40",
			"--n_completions", "3", "--max_new_tokens", "40", "--generation_batch_size", "4", "--output_dir", dir}, extra...)
	}
	// The reference: one uninterrupted run. The tiny model never refuses, so
	// the command ends with exit 1 (no vector) after writing every response.
	whole := filepath.Join(tmp, "whole")
	if err := exec.Command(bin, args(whole)...).Run(); err == nil {
		t.Fatal("expected exit 1 (the tiny model keeps no refusal)")
	}

	cut := filepath.Join(tmp, "cut")
	cmd := exec.Command(bin, args(cut)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once a few batches are checkpointed.
	deadline := time.Now().Add(60 * time.Second)
	for {
		batches, _ := filepath.Glob(filepath.Join(cut, runs.PartialDir, "compliant-*.json"))
		if len(batches) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint appeared")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if _, err := os.Stat(filepath.Join(cut, runs.MetadataFile)); err == nil {
		t.Skip("the run finished before it could be killed; nothing to resume")
	}
	saved, _ := filepath.Glob(filepath.Join(cut, runs.PartialDir, "*.json"))
	// Without --resume the interrupted run is refused, untouched.
	if code := exec.Command(bin, args(cut)...).Run(); code == nil {
		t.Fatal("a second run into the interrupted folder was not refused")
	}
	var stderr bytes.Buffer
	res := exec.Command(bin, args(cut, "--resume")...)
	res.Stderr = &stderr
	_ = res.Run()
	if !bytes.Contains(stderr.Bytes(), []byte("too few kept responses")) {
		t.Fatalf("resume did not finish: %s", stderr.String())
	}
	for _, name := range []string{runs.CompliantResponsesFile, runs.RefusalResponsesFile,
		runs.FilteredCompliantResponsesFile, runs.FilteredRefusalResponsesFile} {
		a, err := os.ReadFile(filepath.Join(whole, name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(cut, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs after kill and resume", name)
		}
	}
	t.Logf("%d checkpoint files were there when the run was killed", len(saved))
	if _, err := os.Stat(filepath.Join(cut, runs.PartialDir)); err != nil {
		t.Logf("checkpoint removed after completion: ok")
	}
}
