package charts

// The tests' names for the sample charts (a run folder names its chart
// files the same way: runs.Chart*).
const (
	NameKeptVsGenerated = "kept_vs_generated"
	NameVectorNorms     = "vector_norms"
	NameCosineHeatmap   = "cosine_similarity"
	NameLayerScores     = "layer_scores"
	NameRefusalRates    = "refusal_rates"
)
