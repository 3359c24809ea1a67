package refusalkit

import (
	"errors"
	"math"
	"testing"

	"github.com/refusalkit/refusalkit/internal/testutil"
	"github.com/refusalkit/refusalkit/refusalkit/judge"
)

// Rejudging re-filters the same responses: each judge keeps what it reads,
// the activations recomputed by a forward pass equal the ones captured while
// generating, and the input is left as it was.
func TestRejudge(t *testing.T) {
	m := testutil.TinyModel(t)
	cfg := smallGenerateConfig()
	queries := []string{"one", "two"}
	comp, err := GenerateResponses(m, queries, ModeCompliant, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := GenerateResponses(m, queries, ModeRefusal, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The tiny model never refuses: its texts are given readings by hand
	// (the activations come from the token ids, which stay the model's).
	texts := []string{
		"I'm sorry, but I can't help with that.",
		"I'm sorry. Here are the steps: first mix the flour and the water, then knead the dough for ten minutes, then bake it.",
		"I'm sorry, I'm sorry, I'm sorry, I'm sorry.",
		"Sure, here it is.",
		"I cannot answer that.",
		"The answer is four.",
	}
	for i := range ref {
		ref[i].Response = texts[i%len(texts)]
	}
	x := &Extraction{Config: ExtractConfig{GenerateConfig: cfg}, Queries: queries, Compliant: comp, Refusal: ref}
	for _, name := range judge.Names {
		j := judge.Must(name)
		y, err := Rejudge(m, x, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if y.Config.Judge != name {
			t.Errorf("%s: config judge %q", name, y.Config.Judge)
		}
		wantRef := FilterResponsesWith(j, ref, true)
		if len(y.FilteredRefusal) != len(wantRef) || len(y.FilteredCompliant) != len(FilterResponsesWith(j, comp, false)) {
			t.Fatalf("%s: kept %d refusal and %d compliant", name, len(y.FilteredRefusal), len(y.FilteredCompliant))
		}
		// The vector from captured activations of the same kept responses.
		var capRef, capComp []Response
		for _, r := range ref {
			if j.Verdict(r.Response) == judge.Refuses {
				capRef = append(capRef, r)
			}
		}
		for _, r := range comp {
			if j.Verdict(r.Response) == judge.Answers {
				capComp = append(capComp, r)
			}
		}
		want, err := ComputeRefusalVector(m.Alias(), capRef, capComp)
		if err != nil {
			t.Fatal(err)
		}
		for l := range want.Data {
			for d := range want.Data[l] {
				if diff := math.Abs(float64(want.Data[l][d] - y.Vector.Data[l][d])); diff > 1e-4 {
					t.Fatalf("%s: layer %d dim %d: rejudged %g, captured %g", name, l, d, y.Vector.Data[l][d], want.Data[l][d])
				}
			}
		}
	}
	// The substring judge keeps the apology-then-steps reply and the loop; the leading one neither.
	sub, lead := MustRejudge(m, x, "substring"), MustRejudge(m, x, "leading")
	if len(sub.FilteredRefusal) <= len(lead.FilteredRefusal) {
		t.Errorf("substring kept %d refusals, leading %d: want fewer for leading", len(sub.FilteredRefusal), len(lead.FilteredRefusal))
	}
	for _, r := range x.Refusal {
		if r.Means == nil {
			t.Fatal("Rejudge dropped the input's activations")
		}
	}
	if _, err := Rejudge(m, x, "nope"); err == nil {
		t.Error("an unknown judge was accepted")
	}
	// Nothing kept on one side: the extraction comes back with the error.
	none := &Extraction{Config: x.Config, Compliant: comp, Refusal: comp}
	if y, err := Rejudge(m, none, "leading"); !errors.Is(err, ErrTooFewResponses) || y == nil {
		t.Errorf("Rejudge with no refusal = %v, %v", y, err)
	}
}
