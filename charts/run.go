package charts

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/refusalkit/refusalkit/refusalkit"
)

// Chart names, in the order FromRunDir returns them (the pipeline's order).
// WriteRunCharts writes each as <run dir>/charts/<name>.html.
const (
	NameKeptVsGenerated = "kept_vs_generated" // metadata.json
	NameVectorNorms     = "vector_norms"      // refusal_vector.safetensors
	NameCosineHeatmap   = "cosine_similarity" // refusal_vector.safetensors
	NameLayerScores     = "layer_scores"      // layer_selection_scores.json
	NameRefusalRates    = "refusal_rates"     // eval_summary.json
)

// ChartsDir is the folder, inside a run folder, that WriteRunCharts writes.
const ChartsDir = "charts"

// LayerScoresFrom charts layer_selection_scores.json; its first entry is the
// selected layer.
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

// RefusalRatesFrom charts eval_summary.json's results_by_coefficient.
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

// KeptVsGeneratedFrom charts metadata.json's generated and kept counts.
func KeptVsGeneratedFrom(m *refusalkit.Metadata) *Chart {
	if m == nil {
		return failed("KeptVsGeneratedFrom: no metadata")
	}
	return KeptVsGenerated(
		map[string]int{"compliant": m.NCompliantResponsesGenerated, "refusal": m.NRefusalResponsesGenerated},
		map[string]int{"compliant": m.NCompliantResponsesKept, "refusal": m.NRefusalResponsesKept})
}

// VectorNormsFrom charts the L2 norm of every row of the vector.
func VectorNormsFrom(v *refusalkit.RefusalVector) *Chart {
	if v == nil {
		return failed("VectorNormsFrom: no vector")
	}
	return VectorNorms(v.Norms())
}

// CosineHeatmapFrom charts the cosine similarity between the vector's rows.
func CosineHeatmapFrom(v *refusalkit.RefusalVector) *Chart {
	if v == nil {
		return failed("CosineHeatmapFrom: no vector")
	}
	return CosineHeatmap(v.Data)
}

// readJSON decodes dir/name into v; found is false when the file does not exist.
func readJSON(dir, name string, v any) (found bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return true, fmt.Errorf("charts: %s: %w", filepath.Join(dir, name), err)
	}
	return true, nil
}

// FromRunDir makes the charts for whatever a run folder holds: from
// metadata.json the kept-vs-generated counts, from refusal_vector.safetensors
// the norms and the cosine heat map, from layer_selection_scores.json the
// per-layer steering scores, and from eval_summary.json the refusal rates.
// Missing files are skipped; a file that is there but unreadable is an error,
// and so is a folder with none of them.
func FromRunDir(dir string) ([]NamedChart, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("charts: run folder: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("charts: %s is not a folder", dir)
	}
	var out []NamedChart
	var model string
	add := func(name, source string, c *Chart) error {
		if err := c.Err(); err != nil {
			return fmt.Errorf("%w (from %s)", err, filepath.Join(dir, source))
		}
		if model != "" {
			c.Title += " · " + model
		}
		out = append(out, NamedChart{Name: name, Chart: c})
		return nil
	}

	var meta refusalkit.Metadata
	if ok, err := readJSON(dir, refusalkit.MetadataFile, &meta); err != nil {
		return nil, err
	} else if ok {
		model = meta.ModelAlias
		if err := add(NameKeptVsGenerated, refusalkit.MetadataFile, KeptVsGeneratedFrom(&meta)); err != nil {
			return nil, err
		}
	}

	if _, err := os.Stat(filepath.Join(dir, refusalkit.VectorSafetensorsFile)); err == nil {
		v, err := refusalkit.LoadRefusalVector(dir)
		if err != nil {
			return nil, err
		}
		if model == "" {
			model = v.Model
		}
		if err := add(NameVectorNorms, refusalkit.VectorSafetensorsFile, VectorNormsFrom(v)); err != nil {
			return nil, err
		}
		if err := add(NameCosineHeatmap, refusalkit.VectorSafetensorsFile, CosineHeatmapFrom(v)); err != nil {
			return nil, err
		}
	}

	var scores refusalkit.LayerScores
	if ok, err := readJSON(dir, refusalkit.LayerSelectionFile, &scores); err != nil {
		return nil, err
	} else if ok {
		if err := add(NameLayerScores, refusalkit.LayerSelectionFile, LayerScoresFrom(&scores)); err != nil {
			return nil, err
		}
	}

	var summary refusalkit.EvalSummary
	if ok, err := readJSON(dir, refusalkit.EvalSummaryFile, &summary); err != nil {
		return nil, err
	} else if ok {
		if err := add(NameRefusalRates, refusalkit.EvalSummaryFile, RefusalRatesFrom(&summary)); err != nil {
			return nil, err
		}
	}

	if len(out) == 0 {
		return nil, fmt.Errorf("charts: %s holds none of %s, %s, %s, %s: give a folder written by `refusalkit extract` or `refusalkit evaluate`",
			dir, refusalkit.MetadataFile, refusalkit.VectorSafetensorsFile, refusalkit.LayerSelectionFile, refusalkit.EvalSummaryFile)
	}
	return out, nil
}

// WriteRunCharts writes every chart FromRunDir makes as
// <dir>/charts/<name>.html and returns the paths written.
func WriteRunCharts(dir string) ([]string, error) {
	cs, err := FromRunDir(dir)
	if err != nil {
		return nil, err
	}
	paths := make([]string, 0, len(cs))
	for _, nc := range cs {
		p := filepath.Join(dir, ChartsDir, nc.Name+".html")
		if err := nc.Chart.WriteHTML(p); err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// MustFromRunDir is FromRunDir for notebooks: it panics on error.
func MustFromRunDir(dir string) []NamedChart {
	cs, err := FromRunDir(dir)
	if err != nil {
		panic(err)
	}
	return cs
}

// SweepRates charts a coefficient sweep's refusal rates straight from its
// completions (as refusalkit.SweepCoefficients returns them).
func SweepRates(coeffs []float64, sweep map[float64][]refusalkit.EvalCompletion) *Chart {
	refusals, totals := make([]int, len(coeffs)), make([]int, len(coeffs))
	for i, c := range coeffs {
		t := refusalkit.Tally(sweep[c])
		refusals[i], totals[i] = t.RefusalCount, t.TotalCount
	}
	return RefusalRates(coeffs, refusals, totals)
}
