package charts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// OfRun makes the charts of whatever the folder holds, in the method's
// order: from metadata.json the kept-vs-generated counts, from
// refusal_vector.safetensors the norms and the cosine heat map, from
// layer_selection_scores.json the per-layer steering scores, from
// eval_summary.json the refusal rates, from ablation_summary.json the
// refusal rates without and with ablation, and from direction_cosines.json
// the per-layer cosine with the reference direction. Missing files are skipped; a file
// that is there but unreadable is an error, and so is a folder with none.
// The caller holds the folder's lock (runs.LockDir) or owns the run.
func OfRun(dir string) ([]NamedChart, error) {
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
	// found reads dir/name into v; false when the file is absent.
	found := func(name string, v any) (bool, error) {
		err := runs.ReadJSON(filepath.Join(dir, name), v)
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return err == nil, err
	}

	var meta runs.Metadata
	if ok, err := found(runs.MetadataFile, &meta); err != nil {
		return nil, err
	} else if ok {
		model = meta.ModelAlias
		c := KeptVsGenerated(
			map[string]int{"compliant": meta.NCompliantResponsesGenerated, "refusal": meta.NRefusalResponsesGenerated},
			map[string]int{"compliant": meta.NCompliantResponsesKept, "refusal": meta.NRefusalResponsesKept})
		if err := add(runs.ChartKeptVsGenerated, runs.MetadataFile, c); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, runs.VectorSafetensorsFile)); err == nil {
		v, err := runs.LoadVector(dir)
		if err != nil {
			return nil, err
		}
		if model == "" {
			model = v.Model
		}
		if err := add(runs.ChartVectorNorms, runs.VectorSafetensorsFile, VectorNormsFrom(v)); err != nil {
			return nil, err
		}
		if err := add(runs.ChartCosineHeatmap, runs.VectorSafetensorsFile, CosineHeatmapFrom(v)); err != nil {
			return nil, err
		}
	}
	var scores refusalkit.LayerScores
	if ok, err := found(runs.LayerSelectionFile, &scores); err != nil {
		return nil, err
	} else if ok {
		if err := add(runs.ChartLayerScores, runs.LayerSelectionFile, LayerScoresFrom(&scores)); err != nil {
			return nil, err
		}
	}
	var summary refusalkit.EvalSummary
	if ok, err := found(runs.EvalSummaryFile, &summary); err != nil {
		return nil, err
	} else if ok {
		if err := add(runs.ChartRefusalRates, runs.EvalSummaryFile, RefusalRatesFrom(&summary)); err != nil {
			return nil, err
		}
		if hasSideEffects(&summary) { // summaries written before side effects were measured have none to chart
			if err := add(runs.ChartSideEffects, runs.EvalSummaryFile, SideEffectsFrom(&summary)); err != nil {
				return nil, err
			}
		}
	}
	var ablation refusalkit.AblationSummary
	if ok, err := found(runs.AblationSummaryFile, &ablation); err != nil {
		return nil, err
	} else if ok {
		if err := add(runs.ChartAblationRates, runs.AblationSummaryFile, AblationRatesFrom(&ablation)); err != nil {
			return nil, err
		}
	}
	var cosines refusalkit.DirectionCosines
	if ok, err := found(runs.DirectionCosinesFile, &cosines); err != nil {
		return nil, err
	} else if ok {
		if err := add(runs.ChartDirectionCosine, runs.DirectionCosinesFile, DirectionCosineFrom(&cosines)); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("charts: %s holds none of %s, %s, %s, %s, %s, %s: give a folder written by `refusalkit extract`, `refusalkit evaluate` or `refusalkit ablate`",
			dir, runs.MetadataFile, runs.VectorSafetensorsFile, runs.LayerSelectionFile, runs.EvalSummaryFile, runs.AblationSummaryFile, runs.DirectionCosinesFile)
	}
	return out, nil
}

// WriteRun writes every chart OfRun makes as <dir>/charts/<name>.html
// and returns the paths written.
func WriteRun(dir string) ([]string, error) {
	cs, err := OfRun(dir)
	if err != nil {
		return nil, err
	}
	paths := make([]string, 0, len(cs))
	for _, nc := range cs {
		p := filepath.Join(dir, runs.ChartsDir, nc.Name+".html")
		if err := nc.Chart.WriteHTML(p); err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// hasSideEffects reports a summary whose coefficients carry side effects
// (every perplexity is at least 1 when measured).
func hasSideEffects(s *refusalkit.EvalSummary) bool {
	for _, r := range s.ResultsByCoefficient {
		if r.Perplexity.Mean >= 1 {
			return true
		}
	}
	return false
}

// MustWriteRun is WriteRun for notebooks.
func MustWriteRun(dir string) []string {
	paths, err := WriteRun(dir)
	if err != nil {
		panic(err)
	}
	return paths
}
