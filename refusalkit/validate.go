package refusalkit

import (
	"fmt"
	"math"
	"strings"

	"github.com/refusalkit/refusalkit/models"
)

// Checks that run before any work: every value that would break the
// computation or fail late is refused here, with the value and the fix.

// CheckSampling validates sampling settings: a finite temperature > 0,
// top-p in (0, 1] and top-k ≥ 0 (0: off).
func CheckSampling(temperature, topP float64, topK int) error {
	switch {
	case !(temperature > 0) || math.IsInf(temperature, 0):
		return fmt.Errorf("--temperature must be a finite number > 0, got %v", temperature)
	case !(topP > 0 && topP <= 1):
		return fmt.Errorf("--top_p must be in (0, 1] (1: off), got %v", topP)
	case topK < 0:
		return fmt.Errorf("--top_k must be 0 (off) or positive, got %d", topK)
	}
	return nil
}

// CheckText refuses a NUL byte in user text: it cannot reach a model as
// written and is a sign of a binary or mis-encoded file.
func CheckText(what, text string) error {
	if i := strings.IndexByte(text, 0); i >= 0 {
		return fmt.Errorf("%s has a NUL byte at byte %d: remove it (is the file binary or UTF-16?)", what, i)
	}
	return nil
}

// CheckPromptsFit renders every user message with the model's chat
// template and checks that its tokens plus maxNewTokens fit the context.
func CheckPromptsFit(m *models.Model, userMessages []string, maxNewTokens int) error {
	for _, u := range userMessages {
		_, ids, err := m.EncodePrompt(u)
		if err != nil {
			return err
		}
		if len(ids)+maxNewTokens > m.Config.ContextLength {
			return fmt.Errorf("the prompt of %q is %d tokens; with --max_new_tokens %d it exceeds the model's context of %d tokens: shorten it or lower --max_new_tokens",
				clipText(u, 40), len(ids), maxNewTokens, m.Config.ContextLength)
		}
	}
	return nil
}

// ExtractPrompts lists every user message an extraction sends (both modes,
// every refusal instruction) without generating anything: the same sampling
// Extract does. It refuses refusal instructions CheckRefusalInstructions
// refuses.
func ExtractPrompts(cfg ExtractConfig) ([]string, error) {
	cfg = cfg.WithDefaults()
	pool, err := TrainPool(cfg.Dataset)
	if err != nil {
		return nil, err
	}
	queries, err := SampleQueries(pool, cfg.NSamples, *cfg.Seed)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckRefusalInstructions(); err != nil {
		return nil, err
	}
	var out []string
	for _, q := range queries {
		out = append(out, UserMessage(q, ModeCompliant, ""))
		for _, ri := range cfg.RefusalInstructions {
			out = append(out, UserMessage(q, ModeRefusal, ri))
		}
	}
	return out, nil
}

// CheckRefusalTokenIDs refuses ids outside the model's vocabulary.
func CheckRefusalTokenIDs(m *models.Model, ids []int32) error {
	for _, id := range ids {
		if id < 0 || int(id) >= m.Config.VocabSize {
			return fmt.Errorf("--refusal_tokens: id %d is outside the vocabulary of %s (0..%d)", id, m.Alias(), m.Config.VocabSize-1)
		}
	}
	return nil
}

// maxSteer is the largest |c·v| activation addition may add: float32's
// range, with a margin of 2^10 for the residual stream it is added to.
const maxSteer = math.MaxFloat32 / 1024

// CheckValues validates a vector's values and the coefficients it will be
// scaled by: every value finite, every |c|·max|v| far inside float32, and
// coefficient file names of a sane length. It returns a warning for a
// vector that is all zeros.
func (v *RefusalVector) CheckValues(coefficients []float64) (warnings []string, err error) {
	maxAbs := 0.0
	for i, row := range v.Data {
		for j, x := range row {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, fmt.Errorf("refusal vector layer %d has a non-finite value (%v at %d): re-run `refusalkit extract`", i, x, j)
			}
			maxAbs = math.Max(maxAbs, math.Abs(float64(x)))
		}
	}
	for _, c := range coefficients {
		if math.Abs(c)*maxAbs > maxSteer {
			return nil, fmt.Errorf("--coefficients %g times the vector's largest value %.3g overflows float32: use coefficients below %.3g", c, maxAbs, maxSteer/maxAbs)
		}
		// Its completions file is eval_completions_coeff_{key}.json: keep the name short.
		if key := CoeffKey(c); len(key) > 100 {
			return nil, fmt.Errorf("--coefficients %g would name a file of %d characters: give it with fewer digits", c, len(key)+28)
		}
	}
	if maxAbs == 0 {
		warnings = append(warnings, "the refusal vector is all zeros: every coefficient steers nothing")
	}
	return warnings, nil
}

func clipText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
