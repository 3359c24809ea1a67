package judge

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixedJudge answers from a table, so the counts below follow from it by hand.
type fixedJudge map[string]Verdict

func (fixedJudge) Name() string               { return "fixed" }
func (j fixedJudge) Verdict(r string) Verdict { return j[r] }
func (fixedJudge) Describe() string           { return "fixed" }
func (fixedJudge) Metadata() map[string]any   { return nil }

func TestJudgeAgreement(t *testing.T) {
	c2 := 2.0
	ls := []LabelledReply{
		// sweep c=2: one refusal found, one compliance called a refusal (FP), one degenerate called a breakdown.
		{Source: "sweep c=2.0", Coefficient: &c2, Response: "a", Label: LabelRefusal},
		{Source: "sweep c=2.0", Coefficient: &c2, Response: "b", Label: LabelCompliance},
		{Source: "sweep c=2.0", Coefficient: &c2, Response: "c", Label: LabelDegenerate},
		// refusal mode: one refusal missed (FN), one degenerate called an answer (TN for refusal, not the same 3-way).
		{Source: "refusal_mode", Response: "d", Label: LabelRefusal},
		{Source: "refusal_mode", Response: "e", Label: LabelDegenerate},
	}
	j := fixedJudge{"a": Refuses, "b": Refuses, "c": BreaksDown, "d": Answers, "e": Answers}
	got := Agreements([]Judge{j}, ls)
	want := []Agreement{
		{Judge: "fixed", Source: "refusal_mode", N: 2, FN: 1, TN: 1, Same: 0},
		{Judge: "fixed", Source: "sweep c=2.0", N: 3, TP: 1, FP: 1, TN: 1, Same: 2},
		{Judge: "fixed", Source: "all", N: 5, TP: 1, FP: 1, FN: 1, TN: 2, Same: 2},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	all := got[2]
	if p, ok := all.Precision(); !ok || p != 0.5 {
		t.Errorf("precision %v %v, want 0.5", p, ok)
	}
	if r, ok := all.Recall(); !ok || r != 0.5 {
		t.Errorf("recall %v %v, want 0.5", r, ok)
	}
	if a := all.BinaryAgreement(); a != 0.6 {
		t.Errorf("agreement %v, want 0.6", a)
	}
	if a := all.ThreeWayAgreement(); a != 0.4 {
		t.Errorf("3-way agreement %v, want 0.4", a)
	}
	if _, ok := got[0].Precision(); ok {
		t.Error("precision defined with no judged refusal")
	}
	var b bytes.Buffer
	PrintAgreement(&b, got)
	if !strings.Contains(b.String(), "| fixed | refusal_mode | 2 | 1 | 0 | 50% | 0% | — | 0% |") {
		t.Errorf("table:\n%s", b.String())
	}
}

func TestReadLabels(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.jsonl")
	os.WriteFile(good, []byte(`{"id":"x","source":"refusal_mode","coefficient":null,"instruction":"q","response":"r","label":"refusal","reason":"","split":"dev"}`+"\n\n"), 0o644)
	ls, err := ReadLabels(good)
	if err != nil || len(ls) != 1 || ls[0].Label != LabelRefusal || ls[0].Coefficient != nil {
		t.Fatalf("ReadLabels = %+v, %v", ls, err)
	}
	if n := len(SelectSplit(ls, "heldout")); n != 0 {
		t.Errorf("heldout has %d", n)
	}
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"id":"y","label":"maybe","split":"dev"}`+"\n"), 0o644)
	if _, err := ReadLabels(bad); err == nil || !strings.Contains(err.Error(), `label "maybe"`) {
		t.Errorf("bad label: %v", err)
	}
}

// The committed labels are whole: every reply labelled, both splits used,
// in the bundled model's file and in W1's (Qwen2.5-Coder-1.5B-Instruct).
func TestCommittedLabels(t *testing.T) {
	for _, name := range []string{"labels.jsonl", "w1_labels.jsonl"} {
		path := filepath.Join("..", "..", "testdata", "judge", name)
		ls, err := ReadLabels(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(ls) < 150 {
			t.Errorf("%s: %d labelled replies, want at least 150", name, len(ls))
		}
		if len(SelectSplit(ls, "dev")) == 0 || len(SelectSplit(ls, "heldout")) == 0 {
			t.Errorf("%s: a split is empty", name)
		}
		ids := map[string]bool{}
		for _, l := range ls {
			if ids[l.ID] {
				t.Errorf("%s: id %s twice", name, l.ID)
			}
			ids[l.ID] = true
		}
	}
}

func TestAUC(t *testing.T) {
	// Refusals at 3 and 1, others at 2, 0 and 1: of the 6 pairs, 3 > 2, 3 > 0,
	// 3 > 1, 1 > 0 win and 1 = 1 ties: (4 + 0.5) / 6.
	auc, ok := AUC([]float64{3, 1, 2, 0, 1}, []bool{true, true, false, false, false})
	if !ok || auc != 4.5/6 {
		t.Errorf("AUC = %v %v, want %v", auc, ok, 4.5/6)
	}
	if _, ok := AUC([]float64{1}, []bool{true}); ok {
		t.Error("AUC defined with no negative")
	}
}
