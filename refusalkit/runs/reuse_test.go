package runs

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/internal/testutil"
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
)

// counting counts the batches a step generates.
func counting(m *models.Model, n *int) refusalkit.Option {
	return refusalkit.WithGenerator(func(p [][]int32, o models.GenerateOptions) (*models.Generation, error) {
		*n++
		return m.GenerateIDs(p, o)
	})
}

// A saved extraction is read back, not regenerated, by a run with the same
// settings; other settings are refused, naming the first difference, or
// replace it when the Run allows.
func TestExtractReusedOnlyWhenSettingsMatch(t *testing.T) {
	m := testutil.TinyModel(t)
	dir := t.TempDir()
	cfg := refusalkit.ExtractConfig{NSamples: 2, GenerateConfig: smallGenerateConfig()}
	run, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	var first, again int
	x, err := run.Extract(m, cfg, counting(m, &first))
	if !errors.Is(err, refusalkit.ErrTooFewResponses) || first == 0 {
		t.Fatalf("first extraction: %d batches, %v (the tiny model never refuses)", first, err)
	}
	y, err := run.Extract(m, cfg, counting(m, &again))
	if !errors.Is(err, refusalkit.ErrTooFewResponses) {
		t.Fatalf("reused extraction: %v, want the same too-few error", err)
	}
	if again != 0 {
		t.Errorf("the same settings generated %d batches again", again)
	}
	// (Token ids, not text: the tiny model's bytes are not always UTF-8.)
	if len(y.Compliant) != len(x.Compliant) || !slices.Equal(y.Compliant[3].TokenIDs, x.Compliant[3].TokenIDs) {
		t.Errorf("read back %d responses, want the %d saved", len(y.Compliant), len(x.Compliant))
	}
	other := cfg
	other.Seed = new(int64(7))
	if _, err := run.Extract(m, other); err == nil || !strings.Contains(err.Error(), "seed was 42, now 7") {
		t.Errorf("other settings: %v", err)
	}
	replacing, err := Open(t.TempDir(), ReplaceStale)
	if err != nil {
		t.Fatal(err)
	}
	defer replacing.Close()
	replacing.Dir = dir
	var replaced int
	if _, err := replacing.Extract(m, other, counting(m, &replaced)); !errors.Is(err, refusalkit.ErrTooFewResponses) || replaced == 0 {
		t.Errorf("ReplaceStale: %d batches, %v", replaced, err)
	}
	md, err := run.Metadata()
	if err != nil || md.Seed != 7 {
		t.Errorf("after the replacement metadata.json records seed %v (%v), want 7", md.Seed, err)
	}
}

// evalFixture is an extraction of the tiny model with a vector (its kept
// sets stood in: it never refuses), and a small evaluation of it.
func evalFixture(t *testing.T, m *models.Model) (*refusalkit.Extraction, refusalkit.EvalConfig) {
	t.Helper()
	rs, err := refusalkit.GenerateResponses(m, []string{"one", "two"}, refusalkit.ModeCompliant, smallGenerateConfig())
	if err != nil {
		t.Fatal(err)
	}
	x := &refusalkit.Extraction{FilteredRefusal: rs[:3], FilteredCompliant: rs[3:]}
	if x.Vector, err = refusalkit.ComputeRefusalVector(m.Alias(), x.FilteredRefusal, x.FilteredCompliant); err != nil {
		t.Fatal(err)
	}
	return x, refusalkit.EvalConfig{NValidation: 2, NTest: 2, RefusalTokenIDs: []int32{'I'},
		SweepConfig: refusalkit.SweepConfig{Coefficients: []float64{0, 1}, MaxNewTokens: 4}}
}

// A saved evaluation is read back by a run with the same settings, and
// refused for other ones.
func TestEvaluateReusedOnlyWhenSettingsMatch(t *testing.T) {
	m := testutil.TinyModel(t)
	x, cfg := evalFixture(t, m)
	run, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	ev, err := run.Evaluate(m, x, cfg)
	if err != nil {
		t.Fatal(err)
	}
	back, err := run.Evaluate(m, x, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Timings are measured afresh by every computation: equal ones were read back.
	if !maps.Equal(back.Summary.TimingsSeconds, ev.Summary.TimingsSeconds) || len(back.Completions[1]) != 2 {
		t.Errorf("the same settings did not read the saved evaluation back: timings %v, then %v", ev.Summary.TimingsSeconds, back.Summary.TimingsSeconds)
	}
	other := cfg
	other.Coefficients = []float64{0, 2}
	if _, err := run.Evaluate(m, x, other); err == nil || !strings.Contains(err.Error(), "coefficients was 0 1, now 0 2") {
		t.Errorf("other settings: %v", err)
	}
}
