package runs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/refusalkit"
)

// sampleAblation is an ablation and a direction comparison as the ablate
// command saves them, made by hand.
func sampleAblation() (*refusalkit.Ablation, *refusalkit.DirectionCosines) {
	c := func(instr string, layer int, refused bool) refusalkit.EvalCompletion {
		return refusalkit.EvalCompletion{Instruction: instr, Prompt: "<p>" + instr, Response: "r", IsRefusal: refused, Layer: layer, NTokens: 1}
	}
	jbb := refusalkit.AblationSet{Baseline: []refusalkit.EvalCompletion{c("h1", -1, true), c("h2", -1, true)},
		Ablated: []refusalkit.EvalCompletion{c("h1", 2, false), c("h2", 2, true)}}
	ind := refusalkit.AblationSet{Baseline: []refusalkit.EvalCompletion{c("q1", -1, true)}, Ablated: []refusalkit.EvalCompletion{c("q1", 2, false)}}
	harmless := refusalkit.AblationSet{Baseline: []refusalkit.EvalCompletion{c("v1", -1, false)}, Ablated: []refusalkit.EvalCompletion{c("v1", 2, false)}}
	layer, seed, hseed := 2, int64(100), int64(200)
	ab := &refusalkit.Ablation{
		Config: refusalkit.AblateConfig{Layer: &layer, MaxNewTokens: 64, BatchSize: 8, NInduced: 1, NHarmless: 1, NHarmful: 2,
			InducedSeed: &seed, HarmlessSeed: &hseed, RefusalInstruction: "No.\n"},
		Harmful: []string{"h1", "h2"}, Induced: []string{"q1"}, Harmless: []string{"v1"},
		Sets: map[string]refusalkit.AblationSet{refusalkit.SetJailbreakBench: jbb, refusalkit.SetInducedRefusal: ind, refusalkit.SetHarmless: harmless},
		Summary: refusalkit.AblationSummary{Layer: 2, JailbreakBench: jbb.Tally(), InducedRefusal: ind.Tally(), Harmless: harmless.Tally(),
			NHarmful: 2, NInduced: 1, InducedSeed: 100, HarmlessSeed: 200, HarmlessInstructions: []string{"v1"},
			InducedDataset: refusalkit.AlpacaSource, RefusalInstruction: "No.\n", InducedInstructions: []string{"q1"},
			MaxNewTokens: 64, BatchSize: 8, VectorDir: "elsewhere"},
	}
	half := 0.5
	dc := &refusalkit.DirectionCosines{ModelAlias: "m", Layer: 2, PerLayer: []refusalkit.LayerCosine{
		{Layer: 0, Cosine: nil, VectorNorm: 1}, {Layer: 1, Cosine: &half, VectorNorm: 1, ReferenceNorm: 2}, {Layer: 2, Cosine: &half}}}
	return ab, dc
}

// What SaveAblation and SaveDirectionCosines write reads back the same,
// and the files are the ablation's by name.
func TestAblationFilesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	run, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	ab, dc := sampleAblation()
	if state, _ := AblationState(dir); state != EvalNone {
		t.Fatalf("empty folder in state %v", state)
	}
	if err := run.SaveDirectionCosines(dc); err != nil {
		t.Fatal(err)
	}
	if state, marker := AblationState(dir); state != EvalInterrupted || marker != DirectionCosinesFile {
		t.Errorf("before the summary: state %v (%s), want interrupted", state, marker)
	}
	if err := run.SaveAblation(ab); err != nil {
		t.Fatal(err)
	}
	if state, marker := AblationState(dir); state != EvalComplete || marker != AblationSummaryFile {
		t.Errorf("after the summary: state %v (%s), want complete", state, marker)
	}
	back, err := run.Ablation()
	if err != nil {
		t.Fatal(err)
	}
	ab.Summary.TimingsSeconds, ab.Summary.Versions = nil, nil
	if !reflect.DeepEqual(back.Summary, ab.Summary) || !reflect.DeepEqual(back.Sets, ab.Sets) ||
		!reflect.DeepEqual(back.Harmful, ab.Harmful) || !reflect.DeepEqual(back.Induced, ab.Induced) {
		t.Errorf("read back %+v, saved %+v", back, ab)
	}
	cfg := back.Config
	if *cfg.Layer != 2 || *cfg.InducedSeed != 100 || cfg.Dataset != "" || cfg.RefusalInstruction != "No.\n" || cfg.NHarmful != 2 {
		t.Errorf("config read back %+v", cfg)
	}
	dcBack, err := run.DirectionCosines()
	if err != nil || !reflect.DeepEqual(dcBack, dc) {
		t.Errorf("cosines read back %+v (%v), saved %+v", dcBack, err, dc)
	}
	for _, name := range AblationFiles() {
		if !IsAblationFile(name) || IsEvaluationFile(name) || IsExtractionFile(name) {
			t.Errorf("%s is not told apart as an ablation file", name)
		}
	}
	// The charts an ablation's files give (charts.WriteRun draws them).
	os.MkdirAll(filepath.Join(dir, ChartsDir), 0o755)
	for _, name := range AblationCharts {
		os.WriteFile(filepath.Join(dir, ChartsDir, name+".html"), nil, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "notes.json"), nil, 0o644)
	if err := run.RemoveAblation(); err != nil {
		t.Fatal(err)
	}
	if files, _ := run.Files(); strings.Join(files, ",") != "notes.json" {
		t.Errorf("after RemoveAblation the folder holds %v, want only notes.json", files)
	}
}
