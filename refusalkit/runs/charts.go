package runs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/refusalkit/refusalkit/charts"
	"github.com/refusalkit/refusalkit/refusalkit"
)

// Charts makes the charts of whatever the folder holds, in the method's
// order: from metadata.json the kept-vs-generated counts, from
// refusal_vector.safetensors the norms and the cosine heat map, from
// layer_selection_scores.json the per-layer steering scores, from
// eval_summary.json the refusal rates, from ablation_summary.json the
// refusal rates without and with ablation, and from direction_cosines.json
// the per-layer cosine with the reference direction. Missing files are skipped; a file
// that is there but unreadable is an error, and so is a folder with none.
func (r *Run) Charts() ([]charts.NamedChart, error) { return Charts(r.Dir) }

// MustCharts is Charts for notebooks.
func (r *Run) MustCharts() []charts.NamedChart { return must(r.Charts()) }

// WriteCharts writes every chart Charts makes as <dir>/charts/<name>.html
// and returns the paths written.
func (r *Run) WriteCharts() ([]string, error) { return WriteCharts(r.Dir) }

// MustWriteCharts is WriteCharts for notebooks.
func (r *Run) MustWriteCharts() []string { return must(r.WriteCharts()) }

// Charts is Run.Charts for a folder this process does not hold (the
// charts command takes the lock itself).
func Charts(dir string) ([]charts.NamedChart, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("charts: run folder: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("charts: %s is not a folder", dir)
	}
	var out []charts.NamedChart
	var model string
	add := func(name, source string, c *charts.Chart) error {
		if err := c.Err(); err != nil {
			return fmt.Errorf("%w (from %s)", err, filepath.Join(dir, source))
		}
		if model != "" {
			c.Title += " · " + model
		}
		out = append(out, charts.NamedChart{Name: name, Chart: c})
		return nil
	}
	// found reads dir/name into v; false when the file is absent.
	found := func(name string, v any) (bool, error) {
		err := readJSON(filepath.Join(dir, name), v)
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return err == nil, err
	}

	var meta Metadata
	if ok, err := found(MetadataFile, &meta); err != nil {
		return nil, err
	} else if ok {
		model = meta.ModelAlias
		c := charts.KeptVsGenerated(
			map[string]int{"compliant": meta.NCompliantResponsesGenerated, "refusal": meta.NRefusalResponsesGenerated},
			map[string]int{"compliant": meta.NCompliantResponsesKept, "refusal": meta.NRefusalResponsesKept})
		if err := add(ChartKeptVsGenerated, MetadataFile, c); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, VectorSafetensorsFile)); err == nil {
		v, err := LoadVector(dir)
		if err != nil {
			return nil, err
		}
		if model == "" {
			model = v.Model
		}
		if err := add(ChartVectorNorms, VectorSafetensorsFile, charts.VectorNormsFrom(v)); err != nil {
			return nil, err
		}
		if err := add(ChartCosineHeatmap, VectorSafetensorsFile, charts.CosineHeatmapFrom(v)); err != nil {
			return nil, err
		}
	}
	var scores refusalkit.LayerScores
	if ok, err := found(LayerSelectionFile, &scores); err != nil {
		return nil, err
	} else if ok {
		if err := add(ChartLayerScores, LayerSelectionFile, charts.LayerScoresFrom(&scores)); err != nil {
			return nil, err
		}
	}
	var summary refusalkit.EvalSummary
	if ok, err := found(EvalSummaryFile, &summary); err != nil {
		return nil, err
	} else if ok {
		if err := add(ChartRefusalRates, EvalSummaryFile, charts.RefusalRatesFrom(&summary)); err != nil {
			return nil, err
		}
		if hasSideEffects(&summary) { // summaries written before side effects were measured have none to chart
			if err := add(ChartSideEffects, EvalSummaryFile, charts.SideEffectsFrom(&summary)); err != nil {
				return nil, err
			}
		}
	}
	var ablation refusalkit.AblationSummary
	if ok, err := found(AblationSummaryFile, &ablation); err != nil {
		return nil, err
	} else if ok {
		if err := add(ChartAblationRates, AblationSummaryFile, charts.AblationRatesFrom(&ablation)); err != nil {
			return nil, err
		}
	}
	var cosines refusalkit.DirectionCosines
	if ok, err := found(DirectionCosinesFile, &cosines); err != nil {
		return nil, err
	} else if ok {
		if err := add(ChartDirectionCosine, DirectionCosinesFile, charts.DirectionCosineFrom(&cosines)); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("charts: %s holds none of %s, %s, %s, %s, %s, %s: give a folder written by `refusalkit extract`, `refusalkit evaluate` or `refusalkit ablate`",
			dir, MetadataFile, VectorSafetensorsFile, LayerSelectionFile, EvalSummaryFile, AblationSummaryFile, DirectionCosinesFile)
	}
	return out, nil
}

// WriteCharts is Run.WriteCharts for a folder this process does not hold.
func WriteCharts(dir string) ([]string, error) {
	cs, err := Charts(dir)
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
