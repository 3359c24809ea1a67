package refusalkit

import (
	"fmt"
	"math"
	"sort"

	"github.com/refusalkit/refusalkit/internal/avx"
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit/judge"
)

// RefusalTokens are the first-response tokens whose probability mass defines
// the refusal score (Arditi et al. 2024).
type RefusalTokens struct {
	IDs  []int32  `json:"ids"`
	Text []string `json:"text"`
	// Source: "derived" (from a run's kept responses), "flag" or "fallback".
	Source string `json:"source"`
	// Coverage: the share of kept refusal responses that start with one of
	// the tokens; ComplianceHits: the share of kept compliant responses that do.
	Coverage       float64 `json:"refusal_coverage,omitempty"`
	ComplianceHits float64 `json:"compliant_false_positive_rate,omitempty"`
}

// Limits of the derivation: stop adding tokens at this coverage or count;
// a candidate must start at least refusalTokenMinCount kept refusal
// responses, at most refusalTokenMaxCompliant of the compliant ones, and be
// refusalTokenMinRatio times likelier to start a refusal than a compliant
// response (a one-off first token is noise, not the model's way of refusing).
const (
	refusalTokenCoverage     = 0.9
	refusalTokenMax          = 8
	refusalTokenMinCount     = 2
	refusalTokenMaxCompliant = 0.05
	refusalTokenMinRatio     = 3.0
)

// DeriveRefusalTokens picks, from the model's own behaviour, the small set of
// first tokens that covers most kept refusal responses while rarely starting
// a kept compliant one: greedily by refusal count among the candidates (see
// the limits above), until 90% coverage or 8 tokens. With no candidate (or
// no refusal response) it falls back to the first tokens of the spec's
// refusal phrases.
func DeriveRefusalTokens(m *models.Model, refusal, compliant []Response) (RefusalTokens, error) {
	refCount, compCount := firstTokenCounts(refusal), firstTokenCounts(compliant)
	nRef, nComp := total(refCount), total(compCount)
	if nRef == 0 {
		return FallbackRefusalTokens(m)
	}
	cands := make([]int32, 0, len(refCount))
	for id := range refCount {
		cands = append(cands, id)
	}
	sort.Slice(cands, func(a, b int) bool {
		if refCount[cands[a]] != refCount[cands[b]] {
			return refCount[cands[a]] > refCount[cands[b]]
		}
		return cands[a] < cands[b]
	})
	rt := RefusalTokens{Source: "derived"}
	covered, falsePos := 0, 0
	for _, id := range cands {
		if len(rt.IDs) >= refusalTokenMax || float64(covered) >= refusalTokenCoverage*float64(nRef) {
			break
		}
		refShare := float64(refCount[id]) / float64(nRef)
		compShare := 0.0
		if nComp > 0 {
			compShare = float64(compCount[id]) / float64(nComp)
		}
		if refCount[id] < refusalTokenMinCount || compShare > refusalTokenMaxCompliant || refShare < refusalTokenMinRatio*compShare {
			continue
		}
		rt.IDs = append(rt.IDs, id)
		covered += refCount[id]
		falsePos += compCount[id]
	}
	if len(rt.IDs) == 0 {
		return FallbackRefusalTokens(m)
	}
	rt.Coverage = float64(covered) / float64(nRef)
	if nComp > 0 {
		rt.ComplianceHits = float64(falsePos) / float64(nComp)
	}
	rt.Text = tokenTexts(m, rt.IDs)
	return rt, nil
}

// FallbackRefusalTokens are the first tokens of the spec's refusal phrases.
func FallbackRefusalTokens(m *models.Model) (RefusalTokens, error) {
	rt := RefusalTokens{Source: "fallback"}
	for _, phrase := range judge.RefusalSubstrings {
		ids, err := m.Tokenizer.Encode(phrase)
		if err != nil {
			return rt, err
		}
		if len(ids) > 0 && !containsInt32(rt.IDs, ids[0]) {
			rt.IDs = append(rt.IDs, ids[0])
		}
	}
	rt.Text = tokenTexts(m, rt.IDs)
	return rt, nil
}

// RefusalTokensFromIDs validates ids given on the command line.
func RefusalTokensFromIDs(m *models.Model, ids []int32) (RefusalTokens, error) {
	for _, id := range ids {
		if id < 0 || int(id) >= m.Config.VocabSize {
			return RefusalTokens{}, fmt.Errorf("refusal token id %d is outside the vocabulary [0, %d)", id, m.Config.VocabSize)
		}
	}
	return RefusalTokens{IDs: ids, Text: tokenTexts(m, ids), Source: "flag"}, nil
}

func firstTokenCounts(rs []Response) map[int32]int {
	c := map[int32]int{}
	for _, r := range rs {
		if len(r.TokenIDs) > 0 {
			c[r.TokenIDs[0]]++
		}
	}
	return c
}

func total(c map[int32]int) int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

func tokenTexts(m *models.Model, ids []int32) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = m.Tokenizer.Decode([]int32{id})
	}
	return out
}

func containsInt32(xs []int32, x int32) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// RefusalScore is log P(refusal tokens) − log P(all other tokens) for one
// next-token distribution given as logits, computed stably in float64.
func RefusalScore(logits []float32, tokens []int32) float64 {
	avx.ClearUpper() // the exps below are math.Exp's SSE code (see package avx)
	maxL := math.Inf(-1)
	for _, l := range logits {
		maxL = math.Max(maxL, float64(l))
	}
	// A mark per vocabulary entry, not a map: the layer sweep scores every
	// layer's logits, and a map lookup per entry cost more than the exp.
	isRefusal := make([]bool, len(logits))
	for _, id := range tokens {
		if id >= 0 && int(id) < len(logits) {
			isRefusal[id] = true
		}
	}
	var ref, other float64 // summed apart: other = total − ref would cancel when ref dominates
	for i, l := range logits {
		if e := math.Exp(float64(l) - maxL); isRefusal[i] {
			ref += e
		} else {
			other += e
		}
	}
	const tiny = 1e-300 // keeps log finite when one side underflows
	return math.Log(ref+tiny) - math.Log(other+tiny)
}

// String says which tokens they are and how well they separate the kept responses.
func (rt RefusalTokens) String() string {
	s := fmt.Sprintf("refusal tokens %q (%s)", rt.Text, rt.Source)
	if rt.Source == "derived" {
		s += fmt.Sprintf(": they start %.0f%% of kept refusals and %.0f%% of kept compliant replies",
			100*rt.Coverage, 100*rt.ComplianceHits)
	}
	return s
}
