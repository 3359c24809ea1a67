package runs

import (
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/tensorfile"
)

// AblateOptions say what Run.Ablate ablates beside cfg.
type AblateOptions struct {
	// Reference ablates the reference method's harmful−harmless direction
	// (refusalkit.AblateReferenceDirection) instead of the vector's row; its
	// layer is cfg.Layer, or when nil the best steering score with Tokens on
	// NValidation validation instructions. The direction and its layer
	// scores are saved beside the ablation.
	Reference   bool
	Tokens      refusalkit.RefusalTokens
	NValidation int
	// Direction configures the reference direction (for the cosines, and
	// the ablation with Reference).
	Direction refusalkit.DirectionConfig
	// LayerSource says how the layer was chosen, for the summary.
	LayerSource string
}

// Ablate runs the directional ablation of x's vector (or, with
// ao.Reference, of the reference direction) and saves it: the summary, the
// completions, the cosines with the reference direction, and with Reference
// the direction and its layer scores. The folder's policy applies as in
// Evaluate: a folder that holds an ablation, finished or interrupted, is
// refused with a *FolderError (there are no ablation settings to reuse it
// by), replaced under Overwrite or ReplaceStale; then what killed runs left
// half-written is removed.
func (r *Run) Ablate(m *models.Model, x *refusalkit.Extraction, cfg refusalkit.AblateConfig, ao AblateOptions, opts ...refusalkit.Option) (*refusalkit.Ablation, *refusalkit.DirectionCosines, error) {
	replace := r.policy == overwrite || r.policy == replaceStale
	if err := CheckAblationDir(r.Dir, replace); err != nil {
		return nil, nil, err
	}
	if err := CheckWritable(r.Dir); err != nil {
		return nil, nil, err
	}
	if replace {
		if err := r.RemoveAblation(); err != nil {
			return nil, nil, err
		}
	}
	if err := RemoveStaleTemps(r.Dir); err != nil {
		return nil, nil, err
	}
	var ab *refusalkit.Ablation
	var ref *refusalkit.RefusalVector
	if ao.Reference {
		ra, err := refusalkit.AblateReferenceDirection(m, x, cfg, ao.Direction, ao.Tokens, ao.NValidation, opts...)
		if err != nil {
			return nil, nil, err
		}
		ab, ref = ra.Ablation, ra.Direction
		if err := WriteVectorFile(r.path(HarmfulHarmlessDirectionFile), ref); err != nil {
			return nil, nil, err
		}
		if ra.Scores != nil {
			if err := tensorfile.WriteJSONAtomic(r.path(DirectionLayerScoresFile), ra.Scores); err != nil {
				return nil, nil, err
			}
		}
	} else {
		var err error
		if ab, err = refusalkit.Ablate(m, x, cfg, opts...); err != nil {
			return nil, nil, err
		}
		if ref, err = refusalkit.ReferenceDirection(m, ao.Direction); err != nil {
			return nil, nil, err
		}
	}
	ab.Summary.LayerSource = ao.LayerSource
	if x.Source != "" {
		ab.Summary.VectorDir = x.Source
	}
	dc, err := refusalkit.CompareDirections(x.Vector, ref, ao.Direction, ab.Summary.Layer)
	if err != nil {
		return nil, nil, err
	}
	if err := r.SaveDirectionCosines(dc); err != nil {
		return nil, nil, err
	}
	return ab, dc, r.SaveAblation(ab) // ablation_summary.json last: the completion marker
}

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
