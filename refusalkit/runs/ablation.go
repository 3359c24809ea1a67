package runs

import (
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/tensorfile"
)

// AblationCompletions is ablation_completions.json: each prompt set's
// completions without and with ablation.
type AblationCompletions struct {
	JailbreakBench refusalkit.AblationSet `json:"jailbreakbench"`
	InducedRefusal refusalkit.AblationSet `json:"induced_refusal"`
	Harmless       refusalkit.AblationSet `json:"harmless"`
}

// SaveAblation writes ablation_completions.json, then
// ablation_summary.json (the completion marker), each atomically. The
// summary's vector_dir is the run folder unless already set.
func (r *Run) SaveAblation(ab *refusalkit.Ablation) error {
	comp := AblationCompletions{JailbreakBench: ab.Sets[refusalkit.SetJailbreakBench], InducedRefusal: ab.Sets[refusalkit.SetInducedRefusal],
		Harmless: ab.Sets[refusalkit.SetHarmless]}
	if err := tensorfile.WriteJSONAtomic(r.path(AblationCompletionsFile), comp); err != nil {
		return err
	}
	sum := ab.Summary
	if sum.VectorDir == "" {
		sum.VectorDir = r.Dir
	}
	return tensorfile.WriteJSONAtomic(r.path(AblationSummaryFile), sum)
}

// Ablation reads the saved ablation back: the summary and both sets'
// completions (Config and Direction are not saved; Config's counts, seed,
// layer and decoding settings are restored from the summary).
func (r *Run) Ablation() (*refusalkit.Ablation, error) {
	var sum refusalkit.AblationSummary
	if err := ReadJSON(r.path(AblationSummaryFile), &sum); err != nil {
		return nil, err
	}
	var comp AblationCompletions
	if err := ReadJSON(r.path(AblationCompletionsFile), &comp); err != nil {
		return nil, err
	}
	layer, seed, hseed := sum.Layer, sum.InducedSeed, sum.HarmlessSeed
	cfg := refusalkit.AblateConfig{Layer: &layer, MaxNewTokens: sum.MaxNewTokens, BatchSize: sum.BatchSize,
		NInduced: sum.NInduced, NHarmless: len(sum.HarmlessInstructions), NHarmful: sum.NHarmful, InducedSeed: &seed,
		HarmlessSeed: &hseed, RefusalInstruction: sum.RefusalInstruction, ParseSpecialTokens: sum.ParseSpecialTokens}
	if sum.InducedDataset != refusalkit.AlpacaSource {
		cfg.Dataset = sum.InducedDataset
	}
	ab := &refusalkit.Ablation{Config: cfg, Induced: sum.InducedInstructions, Harmless: sum.HarmlessInstructions, Summary: sum,
		Sets: map[string]refusalkit.AblationSet{refusalkit.SetJailbreakBench: comp.JailbreakBench, refusalkit.SetInducedRefusal: comp.InducedRefusal,
			refusalkit.SetHarmless: comp.Harmless}}
	for _, c := range comp.JailbreakBench.Baseline {
		ab.Harmful = append(ab.Harmful, c.Instruction)
	}
	return ab, nil
}

// MustAblation is Ablation for notebooks.
func (r *Run) MustAblation() *refusalkit.Ablation { return must(r.Ablation()) }

// SaveDirectionCosines writes direction_cosines.json atomically.
func (r *Run) SaveDirectionCosines(dc *refusalkit.DirectionCosines) error {
	return tensorfile.WriteJSONAtomic(r.path(DirectionCosinesFile), dc)
}

// DirectionCosines reads direction_cosines.json back.
func (r *Run) DirectionCosines() (*refusalkit.DirectionCosines, error) {
	var dc refusalkit.DirectionCosines
	if err := ReadJSON(r.path(DirectionCosinesFile), &dc); err != nil {
		return nil, err
	}
	return &dc, nil
}

// MustDirectionCosines is DirectionCosines for notebooks.
func (r *Run) MustDirectionCosines() *refusalkit.DirectionCosines { return must(r.DirectionCosines()) }

// RemoveAblation removes what an ablation wrote, with its charts.
func (r *Run) RemoveAblation() error {
	if err := RemoveAblation(r.Dir); err != nil {
		return err
	}
	return RemoveCharts(r.Dir, AblationCharts)
}
