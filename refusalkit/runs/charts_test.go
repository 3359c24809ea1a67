package runs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/charts"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/tensorfile"
)

// writeRun fills dir with the files extract and evaluate write, made up and
// small: 3 blocks (4 rows), d_model 2.
func writeRun(t *testing.T, dir string, evaluated bool) {
	t.Helper()
	meta := Metadata{NQueries: 4, NCompletionsPerQuery: 5,
		NCompliantResponsesGenerated: 20, NRefusalResponsesGenerated: 20,
		NCompliantResponsesKept: 17, NRefusalResponsesKept: 19, ModelAlias: "tiny-test"}
	if err := tensorfile.WriteJSONAtomic(filepath.Join(dir, MetadataFile), meta); err != nil {
		t.Fatal(err)
	}
	v := &refusalkit.RefusalVector{Model: "tiny-test", NLayers: 3, DModel: 2,
		Data: [][]float32{{3, 4}, {0, 1}, {1, 1}, {-6, -8}}}
	if err := SaveVector(dir, v); err != nil {
		t.Fatal(err)
	}
	if !evaluated {
		return
	}
	scores := refusalkit.LayerScores{BaselineRefusalScore: -3.5, PerLayerScores: []refusalkit.LayerScore{
		{Layer: 1, SteeringScore: 2.75}, {Layer: 2, SteeringScore: 1.5}, {Layer: 0, SteeringScore: -0.25}}}
	if err := tensorfile.WriteJSONAtomic(filepath.Join(dir, LayerSelectionFile), scores); err != nil {
		t.Fatal(err)
	}
	summary := refusalkit.EvalSummary{SelectedLayer: 1, ResultsByCoefficient: map[string]refusalkit.CoefficientResult{
		"0.0": {RefusalCount: 1, TotalCount: 8, RefusalRate: 0.125},
		"1.0": {RefusalCount: 6, TotalCount: 8, RefusalRate: 0.75},
		"2.0": {RefusalCount: 8, TotalCount: 8, RefusalRate: 1}}}
	if err := tensorfile.WriteJSONAtomic(filepath.Join(dir, EvalSummaryFile), summary); err != nil {
		t.Fatal(err)
	}
}

func names(cs []charts.NamedChart) string {
	var n []string
	for _, c := range cs {
		n = append(n, c.Name)
	}
	return strings.Join(n, ",")
}

func TestCharts(t *testing.T) {
	dir := t.TempDir()
	writeRun(t, dir, true)
	cs, err := Charts(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{ChartKeptVsGenerated, ChartVectorNorms, ChartCosineHeatmap, ChartLayerScores, ChartRefusalRates}, ",")
	if got := names(cs); got != want {
		t.Fatalf("charts %s, want %s", got, want)
	}
	// The data that must reach each chart.
	for i, wantData := range [][]string{
		{`"formatter":"17 (85%)"`, `"formatter":"19 (95%)"`, `{"value":20}`},
		{`{"value":5}`, `{"value":1}`, `{"value":10,"itemStyle":{"color":"#9aa3b5"}}`}, // norms of the rows
		{`[0,3,-1]`, `[3,0,-1]`, `[1,2,0.7071]`, `[2,2,1]`},
		{`"yAxis":-3.5`, `{"value":2.75,"itemStyle":{"color":"#ee6666"}}`, `"data":["0","1","2"]`},
		{`[0,0.125,1,8]`, `[1,0.75,6,8]`, `[2,1,8,8]`},
	} {
		option, err := cs[i].Chart.Option()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range wantData {
			if !strings.Contains(option, d) {
				t.Errorf("%s lacks %s:\n%s", cs[i].Name, d, option)
			}
		}
		if !strings.Contains(cs[i].Chart.Title, "tiny-test") {
			t.Errorf("%s title %q does not name the model", cs[i].Name, cs[i].Chart.Title)
		}
	}

	paths, err := WriteCharts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 5 {
		t.Fatalf("wrote %d charts, want 5", len(paths))
	}
	for i, p := range paths {
		if p != filepath.Join(dir, ChartsDir, cs[i].Name+".html") {
			t.Errorf("path %s, want %s/%s.html", p, ChartsDir, cs[i].Name)
		}
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), `t.version="`+charts.EChartsVersion+`"`) {
			t.Errorf("%s: %v, or no inlined library", p, err)
		}
	}
}

func TestChartsPartial(t *testing.T) {
	dir := t.TempDir()
	writeRun(t, dir, false) // extracted, not yet evaluated
	cs, err := Charts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(cs), ChartKeptVsGenerated+","+ChartVectorNorms+","+ChartCosineHeatmap; got != want {
		t.Errorf("charts %s, want %s", got, want)
	}
}

func TestChartsErrors(t *testing.T) {
	if _, err := Charts(t.TempDir()); err == nil || !strings.Contains(err.Error(), "holds none of") {
		t.Errorf("empty folder: %v", err)
	}
	if _, err := Charts(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing folder: no error")
	}
	dir := t.TempDir()
	writeRun(t, dir, true)
	if err := os.WriteFile(filepath.Join(dir, EvalSummaryFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Charts(dir); err == nil || !strings.Contains(err.Error(), EvalSummaryFile) {
		t.Errorf("broken eval_summary.json: %v", err)
	}
	if err := tensorfile.WriteJSONAtomic(filepath.Join(dir, EvalSummaryFile),
		refusalkit.EvalSummary{ResultsByCoefficient: map[string]refusalkit.CoefficientResult{"x": {}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Charts(dir); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("bad coefficient key: %v", err)
	}
}
