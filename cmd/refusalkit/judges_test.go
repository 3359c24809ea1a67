package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/internal/testutil"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

func TestJudgesCommand(t *testing.T) {
	dir := t.TempDir()
	labels := filepath.Join(dir, "labels.jsonl")
	lines := []map[string]any{
		{"id": "a", "source": "refusal_mode", "response": "I'm sorry, but I can't help with that.", "label": "refusal", "split": "heldout"},
		{"id": "b", "source": "refusal_mode", "response": "I'm sorry. Here are the steps: mix, knead and bake the dough for an hour at a high heat until it is brown.", "label": "compliance", "split": "heldout"},
		{"id": "c", "source": "compliant_mode", "response": "Paris is the capital of France.", "label": "compliance", "split": "heldout"},
		{"id": "d", "source": "compliant_mode", "response": "I'm sorry.", "label": "refusal", "split": "dev"},
	}
	var b strings.Builder
	for _, l := range lines {
		j, _ := json.Marshal(l)
		b.Write(append(j, '\n'))
	}
	if err := os.WriteFile(labels, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runStdout(t, "judges", "--labels", labels)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"(3 of 4 replies)", // held-out only by default
		"| substring | refusal_mode | 2 | 1 | 2 | 50% | 50% | 50% | 100% |",
		"| leading | refusal_mode | 2 | 1 | 1 | 100% | 100% | 100% | 100% |",
		"| substring | compliant_mode | 1 | 0 | 0 | 100% | 100% | — | — |",
		"| leading | all | 3 | 1 | 1 | 100% | 100% | 100% | 100% |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A run folder: every judge's verdicts on its saved replies.
	replies := func(texts ...string) []byte {
		var rs []map[string]string
		for _, s := range texts {
			rs = append(rs, map[string]string{"response": s})
		}
		j, _ := json.Marshal(rs)
		return j
	}
	os.WriteFile(filepath.Join(dir, "refusal_responses.json"), replies("I'm sorry, no.", strings.Repeat("I'm sorry I can help. ", 8)), 0o644)
	os.WriteFile(filepath.Join(dir, "eval_completions_coeff_10.0.json"), replies("Fine."), 0o644)
	os.WriteFile(filepath.Join(dir, "eval_completions_coeff_2.0.json"), replies("I cannot."), 0o644)
	code, out, _ = runStdout(t, "judges", "--run_dir", dir)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{"| refusal mode | 2 | 2 / 0 / 0 | 1 / 0 / 1 |", "| sweep c=2.0 | 1 | 1 / 0 / 0 | 1 / 0 / 0 |"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "c=2.0") > strings.Index(out, "c=10.0") {
		t.Errorf("coefficients not in numeric order:\n%s", out)
	}
}

// The judge decides what is kept, never what is generated: a run with
// --judge leading writes the very responses the default run writes, and
// records its judge, in the metadata and in the settings digest.
func TestExtractJudgeFlag(t *testing.T) {
	tmp := t.TempDir()
	extract := func(name string, args ...string) string {
		dir := filepath.Join(tmp, name)
		args = append([]string{"extract", "--model_path", "tiny-random", "--backend", "go", "--n_samples", "2", "--n_completions", "3",
			"--max_new_tokens", "4", "--output_dir", dir}, args...)
		if code, stderr := runCaptured(t, args...); code != 0 && code != 1 { // the tiny model does not refuse: exit 1
			t.Fatalf("%s: exit %d: %s", name, code, stderr)
		}
		return dir
	}
	plain, leading := extract("plain"), extract("leading", "--judge", "leading")
	for _, f := range []string{runs.CompliantResponsesFile, runs.RefusalResponsesFile} {
		a, err := os.ReadFile(filepath.Join(plain, f))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(leading, f))
		if string(a) != string(b) {
			t.Errorf("%s differs between the judges", f)
		}
	}
	var a, b runs.Metadata
	testutil.ReadJSON(t, filepath.Join(plain, runs.MetadataFile), &a)
	testutil.ReadJSON(t, filepath.Join(leading, runs.MetadataFile), &b)
	if a.Judge["method"] != "substring_matching" || a.Judge["name"] != "substring" || b.Judge["name"] != "leading" {
		t.Errorf("judges recorded: %v and %v", a.Judge["name"], b.Judge["name"])
	}
	if name, was, now := b.RunSettings.FirstDifference(a.RunSettings); name != "judge" || was != "(none)" && was != "(not recorded)" || now != "leading" {
		t.Errorf("first difference %q (%q → %q), want the judge", name, was, now)
	}
	for _, s := range a.RunSettings {
		if s.Name == "judge" {
			t.Error("the default judge adds a setting")
		}
	}
}

func TestRejudgeBadInput(t *testing.T) {
	tmp := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rejudge"}, "--model_path, --run_dir and --output_dir are required"},
		{[]string{"rejudge", "--model_path", "x", "--run_dir", tmp, "--output_dir", tmp, "--judge", "x"}, `--judge: unknown judge "x"`},
		{[]string{"rejudge", "--model_path", "x", "--run_dir", tmp, "--output_dir", filepath.Join(tmp, "out")}, "refusal_vector"},
	} {
		code, stderr := runCaptured(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%q: exit %d, %q; want 2 and one line with %q", tc.args, code, stderr, tc.want)
		}
	}
}
