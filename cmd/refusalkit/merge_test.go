package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// Bad shard flags and merge arguments are refused before any work: exit 2,
// one exact line, nothing written.
func TestShardAndMergeRefusedBeforeWork(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"extract", "--model_path", "tiny-random", "--output_dir", out, "--shard", "2/2"}, `refusalkit extract: --shard "2/2": give i/M with 0 <= i < M, e.g. 0/4 for the first of four`},
		{[]string{"extract", "--model_path", "tiny-random", "--output_dir", out, "--shard", "half"}, `refusalkit extract: --shard "half": give i/M with 0 <= i < M, e.g. 0/4 for the first of four`},
		{[]string{"extract", "--model_path", "tiny-random", "--output_dir", out, "--shard", "0/2", "--generation_batch_size", "auto"},
			"refusalkit extract: --shard needs a fixed --generation_batch_size, not auto: every shard must split the run into the same batches"},
		{[]string{"merge", t.TempDir()}, "refusalkit merge: --output_dir is required (see --help)"},
		{[]string{"merge", "--output_dir", out}, "refusalkit merge: give every shard's folder after the flags (see --help)"},
		{[]string{"merge", "--output_dir", out, file}, "refusalkit merge: shard folder " + file + " is not a folder: give the folders `refusalkit extract --shard i/M` wrote"},
		{[]string{"merge", "--output_dir", out, t.TempDir(), "--overwrite"}, "refusalkit merge: flag --overwrite after the shard folders: give the flags first"},
	} {
		t.Run(strings.Join(c.args[len(c.args)-2:], " "), func(t *testing.T) {
			if stderr := refusedBeforeWork(t, c.args, out); !strings.HasPrefix(stderr, c.want) {
				t.Errorf("stderr %q, want %q", stderr, c.want)
			}
		})
	}
}

// Two shards on the command line, merged, write the whole run's response
// files byte for byte (the tiny model keeps no refusal: no vector, exit 1,
// every response saved, as the whole run).
func TestShardsMergeOnTheCommandLine(t *testing.T) {
	tmp := t.TempDir()
	flags := []string{"--model_path", "tiny-random", "--backend", "go", "--n_samples", "3", "--n_completions", "2", "--max_new_tokens", "3", "--generation_batch_size", "2"}
	run := func(want int, args ...string) {
		t.Helper()
		if code, stderr := runCaptured(t, args...); code != want {
			t.Fatalf("%v: exit %d, want %d: %s", args, code, want, stderr)
		}
	}
	whole := filepath.Join(tmp, "whole")
	run(1, append([]string{"extract", "--output_dir", whole}, flags...)...)
	var shards []string
	for _, s := range []string{"0/2", "1/2"} {
		dir := filepath.Join(tmp, "shard"+s[:1])
		run(0, append([]string{"extract", "--output_dir", dir, "--shard", s}, flags...)...)
		shards = append(shards, dir)
	}
	merged := filepath.Join(tmp, "merged")
	run(1, append([]string{"merge", "--output_dir", merged}, shards...)...)
	for _, name := range []string{runs.CompliantResponsesFile, runs.RefusalResponsesFile, runs.FilteredCompliantResponsesFile} {
		a, _ := os.ReadFile(filepath.Join(whole, name))
		b, _ := os.ReadFile(filepath.Join(merged, name))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s: the merged file differs from the whole run's", name)
		}
	}
	run(2, append([]string{"merge", "--output_dir", merged}, shards...)...) // the folder holds a run now
}
