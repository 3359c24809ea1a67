package charts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
	"github.com/refusalkit/refusalkit/refusalkit/tensorfile"
)

// writeRun fills dir with the files extract and evaluate write, made up and
// small: 3 blocks (4 rows), d_model 2.
func writeRun(t *testing.T, dir string, evaluated bool) {
	t.Helper()
	meta := runs.Metadata{NQueries: 4, NCompletionsPerQuery: 5,
		NCompliantResponsesGenerated: 20, NRefusalResponsesGenerated: 20,
		NCompliantResponsesKept: 17, NRefusalResponsesKept: 19, Provenance: refusalkit.Provenance{ModelAlias: "tiny-test"}}
	if err := tensorfile.WriteJSONAtomic(filepath.Join(dir, runs.MetadataFile), meta); err != nil {
		t.Fatal(err)
	}
	v := &refusalkit.RefusalVector{Model: "tiny-test", NLayers: 3, DModel: 2,
		Data: [][]float32{{3, 4}, {0, 1}, {1, 1}, {-6, -8}}}
	if err := runs.SaveVector(dir, v); err != nil {
		t.Fatal(err)
	}
	if !evaluated {
		return
	}
	scores := refusalkit.LayerScores{BaselineRefusalScore: -3.5, PerLayerScores: []refusalkit.LayerScore{
		{Layer: 1, SteeringScore: 2.75}, {Layer: 2, SteeringScore: 1.5}, {Layer: 0, SteeringScore: -0.25}}}
	if err := tensorfile.WriteJSONAtomic(filepath.Join(dir, runs.LayerSelectionFile), scores); err != nil {
		t.Fatal(err)
	}
	summary := refusalkit.EvalSummary{SelectedLayer: 1, ResultsByCoefficient: map[string]refusalkit.CoefficientResult{
		"0.0": {RefusalCount: 1, TotalCount: 8, RefusalRate: 0.125},
		"1.0": {RefusalCount: 6, TotalCount: 8, RefusalRate: 0.75},
		"2.0": {RefusalCount: 8, TotalCount: 8, RefusalRate: 1}}}
	if err := tensorfile.WriteJSONAtomic(filepath.Join(dir, runs.EvalSummaryFile), summary); err != nil {
		t.Fatal(err)
	}
}

func names(cs []NamedChart) string {
	var n []string
	for _, c := range cs {
		n = append(n, c.Name)
	}
	return strings.Join(n, ",")
}

func TestOfRun(t *testing.T) {
	dir := t.TempDir()
	writeRun(t, dir, true)
	cs, err := OfRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{runs.ChartKeptVsGenerated, runs.ChartVectorNorms, runs.ChartCosineHeatmap, runs.ChartLayerScores, runs.ChartRefusalRates}, ",")
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

	paths, err := WriteRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 5 {
		t.Fatalf("wrote %d charts, want 5", len(paths))
	}
	for i, p := range paths {
		if p != filepath.Join(dir, runs.ChartsDir, cs[i].Name+".html") {
			t.Errorf("path %s, want %s/%s.html", p, runs.ChartsDir, cs[i].Name)
		}
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), `t.version="`+EChartsVersion+`"`) {
			t.Errorf("%s: %v, or no inlined library", p, err)
		}
	}
}

func TestOfRunPartial(t *testing.T) {
	dir := t.TempDir()
	writeRun(t, dir, false) // extracted, not yet evaluated
	cs, err := OfRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(cs), runs.ChartKeptVsGenerated+","+runs.ChartVectorNorms+","+runs.ChartCosineHeatmap; got != want {
		t.Errorf("charts %s, want %s", got, want)
	}
}

func TestOfRunErrors(t *testing.T) {
	if _, err := OfRun(t.TempDir()); err == nil || !strings.Contains(err.Error(), "holds none of") {
		t.Errorf("empty folder: %v", err)
	}
	if _, err := OfRun(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing folder: no error")
	}
	dir := t.TempDir()
	writeRun(t, dir, true)
	if err := os.WriteFile(filepath.Join(dir, runs.EvalSummaryFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OfRun(dir); err == nil || !strings.Contains(err.Error(), runs.EvalSummaryFile) {
		t.Errorf("broken eval_summary.json: %v", err)
	}
	if err := tensorfile.WriteJSONAtomic(filepath.Join(dir, runs.EvalSummaryFile),
		refusalkit.EvalSummary{ResultsByCoefficient: map[string]refusalkit.CoefficientResult{"x": {}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := OfRun(dir); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("bad coefficient key: %v", err)
	}
}

// The charts of an ablation's files: refusal rates without and with
// ablation, and the cosine with the reference direction per layer.
func TestOfRunAblation(t *testing.T) {
	dir := t.TempDir()
	run, err := runs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	c := func(layer int, refused bool) refusalkit.EvalCompletion {
		return refusalkit.EvalCompletion{Instruction: "i", Prompt: "p", Response: "r", IsRefusal: refused, Layer: layer, NTokens: 1}
	}
	jbb := refusalkit.AblationSet{Baseline: []refusalkit.EvalCompletion{c(-1, true), c(-1, true)}, Ablated: []refusalkit.EvalCompletion{c(2, false), c(2, true)}}
	ind := refusalkit.AblationSet{Baseline: []refusalkit.EvalCompletion{c(-1, true)}, Ablated: []refusalkit.EvalCompletion{c(2, false)}}
	harmless := refusalkit.AblationSet{Baseline: []refusalkit.EvalCompletion{c(-1, false)}, Ablated: []refusalkit.EvalCompletion{c(2, false)}}
	layer, seed := 2, int64(100)
	ab := &refusalkit.Ablation{
		Config: refusalkit.AblateConfig{Layer: &layer, MaxNewTokens: 64, BatchSize: 8, NInduced: 1, NHarmless: 1, NHarmful: 2,
			InducedSeed: &seed, HarmlessSeed: &seed},
		Sets:    map[string]refusalkit.AblationSet{refusalkit.SetJailbreakBench: jbb, refusalkit.SetInducedRefusal: ind, refusalkit.SetHarmless: harmless},
		Summary: refusalkit.AblationSummary{Layer: 2, JailbreakBench: jbb.Tally(), InducedRefusal: ind.Tally(), Harmless: harmless.Tally()},
	}
	half := 0.5
	dc := &refusalkit.DirectionCosines{ModelAlias: "m", Layer: 2, PerLayer: []refusalkit.LayerCosine{
		{Layer: 0, Cosine: nil, VectorNorm: 1}, {Layer: 1, Cosine: &half, VectorNorm: 1, ReferenceNorm: 2}, {Layer: 2, Cosine: &half}}}
	if err := run.SaveDirectionCosines(dc); err != nil {
		t.Fatal(err)
	}
	if err := run.SaveAblation(ab); err != nil {
		t.Fatal(err)
	}
	cs, err := OfRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(cs), runs.ChartAblationRates+","+runs.ChartDirectionCosine; got != want {
		t.Fatalf("charts %s, want %s", got, want)
	}
	for i, wantData := range [][]string{
		{`"formatter":"2/2"`, `"formatter":"1/2"`, `"formatter":"0/1"`, `{"value":0.5,`},
		{`"data":[{"value":"-"},{"value":0.5},{"value":0.5}]`, `"value":"L2"`},
	} {
		opt, err := cs[i].Chart.Option()
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range wantData {
			if !strings.Contains(opt, w) {
				t.Errorf("chart %s lacks %s", cs[i].Name, w)
			}
		}
	}
	if _, err := WriteRun(dir); err != nil {
		t.Fatal(err)
	}
}
