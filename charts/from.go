package charts

import (
	"fmt"
	"strconv"

	"github.com/refusalkit/refusalkit/refusalkit"
)

// The adapters below chart refusalkit's values: a cell passes the result of
// a step straight in (charts.MustDisplay(charts.LayerScoresFrom(ev.Scores))).

// LayerScoresFrom charts the per-layer steering scores; the first entry is
// the selected layer.
func LayerScoresFrom(s *refusalkit.LayerScores) *Chart {
	if s == nil || len(s.PerLayerScores) == 0 {
		return failed("LayerScoresFrom: no per-layer scores")
	}
	layers := make([]int, len(s.PerLayerScores))
	scores := make([]float64, len(s.PerLayerScores))
	for i, ls := range s.PerLayerScores {
		layers[i], scores[i] = ls.Layer, ls.SteeringScore
	}
	return LayerScores(s.BaselineRefusalScore, layers, scores, s.Selected().Layer)
}

// RefusalRatesFrom charts an evaluation summary's results_by_coefficient.
func RefusalRatesFrom(s *refusalkit.EvalSummary) *Chart {
	if s == nil || len(s.ResultsByCoefficient) == 0 {
		return failed("RefusalRatesFrom: no results by coefficient")
	}
	var coeffs []float64
	var refusals, totals []int
	for key, r := range s.ResultsByCoefficient {
		c, err := strconv.ParseFloat(key, 64)
		if err != nil {
			return failed("RefusalRatesFrom: coefficient key %q is not a number", key)
		}
		coeffs, refusals, totals = append(coeffs, c), append(refusals, r.RefusalCount), append(totals, r.TotalCount)
	}
	c := RefusalRates(coeffs, refusals, totals)
	if c.err == nil && s.SelectedLayer >= 0 {
		c.Title += fmt.Sprintf(" (layer %d)", s.SelectedLayer)
	}
	return c
}

// KeptVsGeneratedFrom charts an extraction's generated and kept counts per mode.
func KeptVsGeneratedFrom(x *refusalkit.Extraction) *Chart {
	if x == nil {
		return failed("KeptVsGeneratedFrom: no extraction")
	}
	return KeptVsGenerated(
		map[string]int{"compliant": len(x.Compliant), "refusal": len(x.Refusal)},
		map[string]int{"compliant": len(x.FilteredCompliant), "refusal": len(x.FilteredRefusal)})
}

// VectorNormsFrom charts the L2 norm of the vector at every layer.
func VectorNormsFrom(v *refusalkit.RefusalVector) *Chart {
	if v == nil {
		return failed("VectorNormsFrom: no vector")
	}
	return VectorNorms(v.Norms())
}

// CosineHeatmapFrom charts the cosine similarity between the vector's layers.
func CosineHeatmapFrom(v *refusalkit.RefusalVector) *Chart {
	if v == nil {
		return failed("CosineHeatmapFrom: no vector")
	}
	return CosineHeatmap(v.Data)
}

// SideEffectsFrom charts an evaluation summary's refusal rate and side
// effects per coefficient.
func SideEffectsFrom(s *refusalkit.EvalSummary) *Chart {
	if s == nil || len(s.ResultsByCoefficient) == 0 {
		return failed("SideEffectsFrom: no results by coefficient")
	}
	var ps []SideEffectPoint
	for key, r := range s.ResultsByCoefficient {
		c, err := strconv.ParseFloat(key, 64)
		if err != nil {
			return failed("SideEffectsFrom: coefficient key %q is not a number", key)
		}
		p := SideEffectPoint{Coefficient: c, RefusalRate: r.RefusalRate, KL: r.KL.Mean, Perplexity: r.Perplexity.Mean,
			Repetition: r.Repetition.Mean}
		if r.TotalCount > 0 {
			p.DegenerateShare = float64(r.DegenerateCount) / float64(r.TotalCount)
		}
		ps = append(ps, p)
	}
	c := SideEffects(ps)
	if c.err == nil && s.SelectedLayer >= 0 {
		c.Title += fmt.Sprintf(" (layer %d)", s.SelectedLayer)
	}
	return c
}

// AblationRatesFrom charts an ablation summary's refusal rates without and
// with ablation, per prompt set.
func AblationRatesFrom(s *refusalkit.AblationSummary) *Chart {
	if s == nil {
		return failed("AblationRatesFrom: no ablation summary")
	}
	sets := []string{"JailbreakBench (harmful)", "induced refusal (test split)", "harmless (validation split)"}
	rs := []refusalkit.AblationResult{s.JailbreakBench, s.InducedRefusal, s.Harmless}
	var br, bt, ar, at []int
	for _, r := range rs {
		br, bt = append(br, r.Baseline.RefusalCount), append(bt, r.Baseline.TotalCount)
		ar, at = append(ar, r.Ablated.RefusalCount), append(at, r.Ablated.TotalCount)
	}
	return AblationRates(sets, br, bt, ar, at, s.Layer)
}

// DirectionCosineFrom charts direction_cosines.json's per-layer cosines,
// with the ablated layer pinned.
func DirectionCosineFrom(dc *refusalkit.DirectionCosines) *Chart {
	if dc == nil || len(dc.PerLayer) == 0 {
		return failed("DirectionCosineFrom: no per-layer cosines")
	}
	return DirectionCosine(dc.Cosines(), dc.Layer)
}

// DirectionCosinesOf charts the per-layer cosine between a refusal vector
// and another direction (the reference method's, refusalkit.ReferenceDirection),
// with layer pinned (-1: none).
func DirectionCosinesOf(v, ref *refusalkit.RefusalVector, layer int) *Chart {
	if v == nil || ref == nil {
		return failed("DirectionCosinesOf: no vector")
	}
	cos, err := refusalkit.LayerCosines(v, ref)
	if err != nil {
		return failed("DirectionCosinesOf: %v", err)
	}
	return DirectionCosine(cos, layer)
}
