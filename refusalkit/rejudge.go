package refusalkit

import (
	"errors"
	"fmt"
	"time"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit/judge"
)

// Rejudge re-filters an extraction's responses with another judge and makes
// the vector again, without generating anything: what is generated does not
// depend on the judge, only what is kept does, so two judges compared on the
// same responses differ by their filtering alone. x must hold every
// response of both modes with its token ids (a saved extraction does); the
// kept responses' activations are computed by a forward pass
// (MeanActivations: equal within 1e-4 to the ones captured while
// generating). x is not modified. As Extract, it returns the Extraction with
// an error wrapping ErrTooFewResponses when a side keeps nothing.
func Rejudge(m *models.Model, x *Extraction, judgeName string) (*Extraction, error) {
	jd, err := judge.ByName(judgeName)
	if err != nil {
		return nil, err
	}
	if len(x.Compliant) == 0 || len(x.Refusal) == 0 {
		return nil, fmt.Errorf("the extraction holds %d compliant and %d refusal responses: rejudging needs every response of both modes", len(x.Compliant), len(x.Refusal))
	}
	cfg := x.Config
	cfg.Judge = jd.Name()
	cfg = cfg.WithDefaults()
	y := &Extraction{Model: m.Path, Config: cfg, Queries: x.Queries, Timings: map[string]float64{}, ResponsesFrom: x.ResponsesFrom}
	start := time.Now()
	defer func() { y.Timings["total"] = time.Since(start).Seconds() }()
	y.Compliant, y.Refusal = cloneResponses(x.Compliant), cloneResponses(x.Refusal)
	for _, r := range append(append([]Response{}, y.Compliant...), y.Refusal...) {
		if len(r.TokenIDs) == 0 && r.NTokens > 0 {
			return nil, fmt.Errorf("response to %q (query %d, completion %d) has no token ids: its activations cannot be recomputed", r.Instruction, r.QueryIndex, r.CompletionIndex)
		}
	}
	err = y.keepAndAverage(m, jd, cfg.BatchSize, timer(m, y.Timings, nil))
	if errors.Is(err, ErrTooFewResponses) {
		return y, fmt.Errorf("%w. The %s judge kept %d of %d compliant and %d of %d refusal responses",
			err, jd.Name(), len(y.FilteredCompliant), len(y.Compliant), len(y.FilteredRefusal), len(y.Refusal))
	}
	if err != nil {
		return nil, err
	}
	return y, nil
}

// MustRejudge is Rejudge for notebooks.
func MustRejudge(m *models.Model, x *Extraction, judgeName string) *Extraction {
	y, err := Rejudge(m, x, judgeName)
	if err != nil {
		panic(err)
	}
	return y
}

// cloneResponses copies rs without their activations (each kept response
// gets its own from MeanActivations).
func cloneResponses(rs []Response) []Response {
	out := make([]Response, len(rs))
	for i, r := range rs {
		r.Means = nil
		out[i] = r
	}
	return out
}
