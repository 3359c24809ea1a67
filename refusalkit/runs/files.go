package runs

import "github.com/refusalkit/refusalkit/refusalkit"

// The spec's file names, and the folders refusalkit keeps beside them.
const (
	// Extraction (the spec's run_refusal_vector_pipeline.py).
	MetadataFile                   = "metadata.json" // written last: the extraction's completion marker
	CompliantResponsesFile         = "compliant_responses.json"
	RefusalResponsesFile           = "refusal_responses.json"
	FilteredCompliantResponsesFile = "filtered_compliant_responses.json"
	FilteredRefusalResponsesFile   = "filtered_refusal_responses.json"
	VectorPTFile                   = "refusal_vector.pt"          // for Python: torch.load(path, weights_only=True)
	VectorSafetensorsFile          = "refusal_vector.safetensors" // what refusalkit reads back

	// Evaluation (the spec's eval_refusal_vector.py), with one
	// eval_completions_coeff_{c}.json per coefficient (CompletionsFile).
	LayerSelectionFile = "layer_selection_scores.json"
	CalibrationFile    = "calibration.json"  // the coefficient search, with --target_refusal_rate
	EvalSummaryFile    = "eval_summary.json" // written last: the evaluation's completion marker

	// Directional ablation (refusalkit ablate): the refusal rates without and
	// with the direction ablated, the completions behind them, and the
	// per-layer cosine with the reference method's direction.
	AblationSummaryFile     = "ablation_summary.json"     // written last: the ablation's completion marker
	AblationCompletionsFile = "ablation_completions.json" // {"jailbreakbench": {"without_ablation": [...], "with_ablation": [...]}, "induced_refusal": {...}}
	DirectionCosinesFile    = "direction_cosines.json"    // refusalkit.DirectionCosines
	// ablate --direction harmful_harmless: the direction ablated, as a vector
	// file, and its layers ranked by steering score.
	HarmfulHarmlessDirectionFile = "harmful_harmless_direction.safetensors"
	DirectionLayerScoresFile     = "harmful_harmless_layer_scores.json"

	// ChartsDir holds the charts as self-contained HTML pages, <name>.html.
	ChartsDir = "charts"
	// PartialDir holds the checkpoint of an unfinished extraction; it is
	// removed when the run completes.
	PartialDir = ".partial"
	// EvalStagingDir is where an evaluation writes its files before
	// publishing them together (SaveEvaluation). A folder that holds it
	// holds an evaluation that did not finish publishing.
	EvalStagingDir = ".eval-staging"
)

// CompletionsFile names the completions of one coefficient as the spec does:
// eval_completions_coeff_0.0.json, eval_completions_coeff_0.5.json, …
func CompletionsFile(coeff float64) string {
	return "eval_completions_coeff_" + refusalkit.CoeffKey(coeff) + ".json"
}

// Chart names, in the order Charts returns them (the method's order), with
// the file each is drawn from.
const (
	ChartKeptVsGenerated = "kept_vs_generated" // metadata.json
	ChartVectorNorms     = "vector_norms"      // refusal_vector.safetensors
	ChartCosineHeatmap   = "cosine_similarity" // refusal_vector.safetensors
	ChartLayerScores     = "layer_scores"      // layer_selection_scores.json
	ChartRefusalRates    = "refusal_rates"     // eval_summary.json
	ChartSideEffects     = "side_effects"      // eval_summary.json
	ChartAblationRates   = "ablation_rates"    // ablation_summary.json
	ChartDirectionCosine = "direction_cosine"  // direction_cosines.json
)

// The charts each stage's files give.
var (
	ExtractionCharts = []string{ChartKeptVsGenerated, ChartVectorNorms, ChartCosineHeatmap}
	EvaluationCharts = []string{ChartLayerScores, ChartRefusalRates, ChartSideEffects}
	AblationCharts   = []string{ChartAblationRates, ChartDirectionCosine}
)
