package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/internal/testutil"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// --refusal_instruction given once is the single-instruction run, file for
// file (the flag given once with the spec's text, and left out); given
// twice, both reach the run, spread over the completions.
func TestRefusalInstructionFlagRepeats(t *testing.T) {
	tmp := t.TempDir()
	extract := func(name string, args ...string) string {
		dir := filepath.Join(tmp, name)
		args = append([]string{"extract", "--model_path", "tiny-random", "--backend", "go", "--n_samples", "2", "--n_completions", "3",
			"--max_new_tokens", "4", "--output_dir", dir}, args...)
		// The tiny model does not refuse: exit 1 (too few kept), every file written.
		if code, stderr := runCaptured(t, args...); code != 0 && code != 1 {
			t.Fatalf("%s: exit %d: %s", name, code, stderr)
		}
		return dir
	}
	plain := extract("plain")
	once := extract("once", "--refusal_instruction", refusalkit.DefaultRefusalInstruction)
	for _, f := range []string{runs.CompliantResponsesFile, runs.RefusalResponsesFile, runs.FilteredCompliantResponsesFile, runs.FilteredRefusalResponsesFile} {
		a, err := os.ReadFile(filepath.Join(plain, f))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(once, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the flag left out and given once", f)
		}
		if bytes.Contains(a, []byte("refusal_instruction_index")) {
			t.Errorf("%s of a one-instruction run has refusal_instruction_index", f)
		}
	}

	instrs := []string{"First refuse.\n", refusalkit.DeclineInstruction}
	twice := extract("twice", "--refusal_instruction", instrs[0], "--refusal_instruction", instrs[1])
	var md runs.Metadata
	testutil.ReadJSON(t, filepath.Join(twice, runs.MetadataFile), &md)
	if len(md.RefusalInstructions) != 2 || md.RefusalInstructions[0] != instrs[0] || md.RefusalInstructions[1] != instrs[1] {
		t.Fatalf("metadata lists %q, want %q", md.RefusalInstructions, instrs)
	}
	if k := md.RefusalKeptByInstruction; len(k) != 2 || k[0].Generated != 4 || k[1].Generated != 2 {
		t.Errorf("per-instruction counts %+v, want 4 and 2 generated", k)
	}
	var rs []refusalkit.Response
	testutil.ReadJSON(t, filepath.Join(twice, runs.RefusalResponsesFile), &rs)
	for _, r := range rs {
		i := r.CompletionIndex % 2
		if r.RefusalInstructionIndex == nil || *r.RefusalInstructionIndex != i || !strings.HasPrefix(r.UserMessage, instrs[i]) {
			t.Errorf("query %d completion %d: index %v, user message %q", r.QueryIndex, r.CompletionIndex, r.RefusalInstructionIndex, r.UserMessage)
		}
	}
}
