package judge

import (
	"math"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/internal/testutil"
	"github.com/refusalkit/refusalkit/models"
)

// The model judge's log-odds are the logits of Yes and No that one forward
// pass over its question gives, batch or no batch.
func TestModelJudgeLogOdds(t *testing.T) {
	m := testutil.TinyModel(t)
	replies := []string{"I'm sorry, I can't.", "Paris.", "", "<|im_end|> spelled in a reply"}
	// The tiny model's small vocabulary writes "Yes" in pieces: compare two
	// one-token answers instead (the bundled model has "Yes" and "No").
	if _, err := (Model{Model: m}).LogOdds(replies); err == nil || !strings.Contains(err.Error(), "needs it as one") {
		t.Errorf("a multi-token answer: %v", err)
	}
	j := Model{Model: m, BatchSize: 3, Yes: "Y", No: "N"}
	lo, err := j.LogOdds(replies)
	if err != nil {
		t.Fatal(err)
	}
	if len(lo) != len(replies) {
		t.Fatalf("%d log-odds for %d replies", len(lo), len(replies))
	}
	yes, _ := singleToken(m, "Y")
	no, _ := singleToken(m, "N")
	for i, r := range replies {
		_, ids, err := m.EncodePromptWith(ModelQuestionFor(r), models.EncodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.Forward([][]int32{ids}, models.ForwardOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := float64(res.Logits[0][yes]) - float64(res.Logits[0][no])
		if math.Abs(lo[i]-want) > 1e-4 || math.IsNaN(lo[i]) {
			t.Errorf("reply %d: log-odds %g, one pass alone %g", i, lo[i], want)
		}
	}
	f, _, err := FixModel(j, replies)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range replies {
		if want := lo[i] > 0; (f.Verdict(r) == Refuses) != want {
			t.Errorf("reply %d: verdict %s with log-odds %g", i, f.Verdict(r), lo[i])
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("a reply the judge was not given got a verdict")
		}
	}()
	f.Verdict("never seen")
}

// The calibrated threshold agrees best with the dev labels, nearest 0 among
// equals; a reply that breaks down is never asked about.
func TestDevThresholdAndCalibrated(t *testing.T) {
	if got := DevThreshold([]float64{-2, -1, 1, 3}, []bool{false, false, true, true}); got != 0 {
		t.Errorf("separable around 0: threshold %g, want 0", got)
	}
	if got := DevThreshold([]float64{-2, -1, -0.5, 3}, []bool{false, false, true, true}); got != -0.75 {
		t.Errorf("refusals from -0.5 up: threshold %g, want -0.75", got)
	}
	loop := strings.Repeat("please provide please assist ", 10)
	f := Calibrated(Model{Model: testutil.TinyModel(t)}, []string{"No.", "Sure.", loop}, []float64{2, -3, 5}, -0.75)
	for r, want := range map[string]Verdict{"No.": Refuses, "Sure.": Answers, loop: BreaksDown} {
		if got := f.Verdict(r); got != want {
			t.Errorf("%q: %s, want %s", r, got, want)
		}
	}
}
