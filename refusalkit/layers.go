package refusalkit

import (
	"slices"
	"sort"

	"github.com/refusalkit/refusalkit/models"
)

// ScoreConfig holds layer selection's settings. Its zero value is the
// spec's: batches of 8, special-token spellings read as text.
type ScoreConfig struct {
	BatchSize int // prompts per forward pass; 0 = 8
	// ParseSpecialTokens reads special-token spellings in the instructions
	// as control tokens (models.EncodeOptions).
	ParseSpecialTokens bool
}

// LayerScore is one entry of layer_selection_scores.json.
type LayerScore struct {
	Layer                   int     `json:"layer"`
	SteeringScore           float64 `json:"steering_score"`
	ImprovementOverBaseline float64 `json:"improvement_over_baseline"`
	VectorNorm              float64 `json:"vector_norm"`
	// KL is the mean KL that coefficient 1 at this layer causes on the
	// validation prompts (teacher-forced on their unsteered continuations):
	// measured at the selected layer, and at every layer by steering_kl.
	KL *float64 `json:"kl,omitempty"`
}

// LayerScores is layer_selection_scores.json: the baseline and every
// steerable layer, sorted by steering score, best first.
type LayerScores struct {
	BaselineRefusalScore float64       `json:"baseline_refusal_score"`
	PerLayerScores       []LayerScore  `json:"per_layer_scores"`
	Method               string        `json:"layer_selection_method"`
	RefusalTokens        RefusalTokens `json:"refusal_tokens"`
	ValidationSeed       int64         `json:"validation_seed"`
	ValidationQueries    []string      `json:"validation_instructions"`
	Coefficient          float64       `json:"steering_coefficient"`
}

// Selected is the chosen layer: the first entry.
func (s *LayerScores) Selected() LayerScore { return s.PerLayerScores[0] }

// encodePrompts chat-templates and tokenizes instructions.
func encodePrompts(m *models.Model, instructions []string, opts models.EncodeOptions) ([]string, [][]int32, error) {
	texts := make([]string, len(instructions))
	ids := make([][]int32, len(instructions))
	for i, s := range instructions {
		var err error
		if texts[i], ids[i], err = m.EncodePromptWith(s, opts); err != nil {
			return nil, nil, err
		}
	}
	return texts, ids, nil
}

// RefusalScores returns the refusal score of each prompt, each row with its
// own steering (nil: none), batchSize rows per forward pass.
func RefusalScores(m *models.Model, prompts [][]int32, steer [][]models.Steering, tokens RefusalTokens, batchSize int) ([]float64, error) {
	scores := make([]float64, len(prompts))
	for start := 0; start < len(prompts); start += batchSize {
		end := min(start+batchSize, len(prompts))
		opts := models.ForwardOptions{}
		if steer != nil {
			opts.SteerRows = steer[start:end]
		}
		res, err := m.Forward(prompts[start:end], opts)
		if err != nil {
			return nil, err
		}
		for i, logits := range res.Logits {
			scores[start+i] = RefusalScore(logits, tokens.IDs)
		}
	}
	return scores, nil
}

// ScoreLayers computes the steering score of every layer of v that sits
// before a block (0..n_layers−1): the mean refusal score over the
// instructions when 1.0 × v[l] is added to the stream entering block l at
// every position. The last layer (the final hidden state) has no block
// after it, so adding it could not steer anything. It runs one clean pass
// per batch, then only blocks l..n_layers−1 for layer l (models.LayerSweep).
// Option: WithProgress (stage "score layers").
func ScoreLayers(m *models.Model, v *RefusalVector, instructions []string, tokens RefusalTokens, cfg ScoreConfig, opts ...Option) (*LayerScores, error) {
	if err := v.CheckFits(m.Config); err != nil {
		return nil, err
	}
	_, prompts, err := encodePrompts(m, instructions, models.EncodeOptions{ParseSpecialTokens: cfg.ParseSpecialTokens})
	if err != nil {
		return nil, err
	}
	score := func(logits []float32) float64 { return RefusalScore(logits, tokens.IDs) }
	base, perLayer, err := m.LayerSweep(prompts, v.Data[:v.NLayers], positiveOr(cfg.BatchSize, 8), score,
		collect(opts).report("score layers"))
	if err != nil {
		return nil, err
	}
	return NewLayerScores(v, instructions, tokens, base, perLayer), nil
}

// MustScoreLayers is ScoreLayers for notebooks.
func MustScoreLayers(m *models.Model, v *RefusalVector, instructions []string, tokens RefusalTokens, cfg ScoreConfig, opts ...Option) *LayerScores {
	s, err := ScoreLayers(m, v, instructions, tokens, cfg, opts...)
	if err != nil {
		panic(err)
	}
	return s
}

// NewLayerScores assembles layer_selection_scores.json from per-prompt
// scores: base[i] unsteered, perLayer[l][i] steered at layer l.
func NewLayerScores(v *RefusalVector, instructions []string, tokens RefusalTokens, base []float64, perLayer [][]float64) *LayerScores {
	out := &LayerScores{BaselineRefusalScore: mean(base), Method: "steering_based", RefusalTokens: tokens, Coefficient: 1.0,
		ValidationQueries: instructions}
	norms := v.Norms()
	for l, s := range perLayer {
		if v.Rows != nil && !slices.Contains(v.Rows, l) {
			continue // a zero row: steering with it is the baseline
		}
		score := mean(s)
		out.PerLayerScores = append(out.PerLayerScores, LayerScore{Layer: l, SteeringScore: score,
			ImprovementOverBaseline: score - out.BaselineRefusalScore, VectorNorm: norms[l]})
	}
	SortLayerScores(out.PerLayerScores)
	return out
}

// NormLayerScores ranks the steerable layers by the vector's L2 norm (the
// alternative named in the spec's code listing; never the default). Steering
// scores are still measured for every layer, so the two rankings compare.
func NormLayerScores(s *LayerScores) *LayerScores {
	out := *s
	out.Method = "norm"
	out.PerLayerScores = append([]LayerScore{}, s.PerLayerScores...)
	sort.SliceStable(out.PerLayerScores, func(a, b int) bool {
		return out.PerLayerScores[a].VectorNorm > out.PerLayerScores[b].VectorNorm
	})
	return &out
}

// KLLayerScores ranks the layers whose KL is known and within maxKL first,
// by steering score, then the others by steering score: its first entry is
// steering_kl's selection.
func KLLayerScores(s *LayerScores, maxKL float64) *LayerScores {
	out := *s
	out.Method = "steering_kl"
	out.PerLayerScores = append([]LayerScore{}, s.PerLayerScores...)
	SortLayerScores(out.PerLayerScores)
	within := func(l LayerScore) bool { return l.KL != nil && *l.KL <= maxKL }
	sort.SliceStable(out.PerLayerScores, func(a, b int) bool {
		return within(out.PerLayerScores[a]) && !within(out.PerLayerScores[b])
	})
	return &out
}

// SortLayerScores orders by steering score, descending (ties: lower layer first).
func SortLayerScores(ls []LayerScore) {
	sort.SliceStable(ls, func(a, b int) bool {
		if ls[a].SteeringScore != ls[b].SteeringScore {
			return ls[a].SteeringScore > ls[b].SteeringScore
		}
		return ls[a].Layer < ls[b].Layer
	})
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
