package refusalkit

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/refusalkit/refusalkit/models"
)

// DirectionConfig holds the reference method's settings. Its zero value:
// all 100 JailbreakBench requests against as many ALPACA validation
// instructions (seed 200), batches of 8.
type DirectionConfig struct {
	Harmful      []string // nil = JailbreakBench's requests
	HarmlessSeed *int64   // sampling the validation split; nil = SpecValidationSeed (200)
	Dataset      string   // the harmless instructions; "" = the embedded ALPACA pool (its validation split)
	BatchSize    int      // prompts per forward pass; 0 = 8
	// ParseSpecialTokens reads special-token spellings in the instructions
	// as control tokens (models.EncodeOptions).
	ParseSpecialTokens bool
}

// WithDefaults returns c with every zero field set to its default.
func (c DirectionConfig) WithDefaults() DirectionConfig {
	c.HarmlessSeed = orDefault(c.HarmlessSeed, SpecValidationSeed)
	c.BatchSize = positiveOr(c.BatchSize, 8)
	return c
}

// DirectionPlan returns the harmful and harmless instructions
// ReferenceDirection will use (the harmless: a seeded sample of the
// validation split, as many as the harmful).
func DirectionPlan(cfg DirectionConfig) (harmful, harmless []string, err error) {
	cfg = cfg.WithDefaults()
	harmful = cfg.Harmful
	if harmful == nil {
		if harmful, err = HarmfulInstructions(); err != nil {
			return nil, nil, err
		}
	}
	if len(harmful) == 0 {
		return nil, nil, fmt.Errorf("no harmful instructions to take the reference direction from")
	}
	if harmless, err = EvalQueries(cfg.Dataset, Validation, len(harmful), *cfg.HarmlessSeed, nil); err != nil {
		return nil, nil, err
	}
	return harmful, harmless, nil
}

// ReferenceDirection computes the reference method's refusal direction
// (Arditi et al. 2024): at every layer, the mean residual stream at the last
// prompt token of the chat-templated harmful instructions minus that of the
// harmless ones. It has the shape of a RefusalVector, [n_layers+1][d_model]
// (NRefusal counts the harmful prompts, NCompliant the harmless), so it
// compares row by row with the vector Extract makes from responses.
func ReferenceDirection(m *models.Model, cfg DirectionConfig) (*RefusalVector, error) {
	cfg = cfg.WithDefaults()
	harmful, harmless, err := DirectionPlan(cfg)
	if err != nil {
		return nil, err
	}
	enc := models.EncodeOptions{ParseSpecialTokens: cfg.ParseSpecialTokens}
	hMean, err := LastTokenMeans(m, harmful, enc, cfg.BatchSize)
	if err != nil {
		return nil, err
	}
	cMean, err := LastTokenMeans(m, harmless, enc, cfg.BatchSize)
	if err != nil {
		return nil, err
	}
	v := &RefusalVector{Model: m.Alias(), NLayers: m.Config.NumLayers, DModel: m.Config.DModel,
		NRefusal: len(harmful), NCompliant: len(harmless), Data: make([][]float32, len(hMean))}
	for l := range hMean {
		v.Data[l] = make([]float32, len(hMean[l]))
		for d := range hMean[l] {
			v.Data[l][d] = float32(hMean[l][d] - cMean[l][d])
		}
	}
	return v, nil
}

// MustReferenceDirection is ReferenceDirection for notebooks.
func MustReferenceDirection(m *models.Model, cfg DirectionConfig) *RefusalVector {
	v, err := ReferenceDirection(m, cfg)
	if err != nil {
		panic(err)
	}
	return v
}

// LastTokenMeans chat-templates the instructions and returns, at every
// layer, the mean over them of the residual stream at each prompt's last
// token, [n_layers+1][d_model], in float64.
func LastTokenMeans(m *models.Model, instructions []string, enc models.EncodeOptions, batchSize int) ([][]float64, error) {
	if len(instructions) == 0 {
		return nil, fmt.Errorf("no instructions to average")
	}
	_, prompts, err := encodePrompts(m, instructions, enc)
	if err != nil {
		return nil, err
	}
	batchSize = positiveOr(batchSize, 8)
	var sum [][]float64
	for start := 0; start < len(prompts); start += batchSize {
		end := min(start+batchSize, len(prompts))
		masks := make([][]bool, end-start)
		for i, p := range prompts[start:end] {
			masks[i] = make([]bool, len(p))
			masks[i][len(p)-1] = true
		}
		res, err := m.Forward(prompts[start:end], models.ForwardOptions{CaptureMask: masks})
		if err != nil {
			return nil, err
		}
		for _, means := range res.Means {
			if sum == nil {
				sum = make([][]float64, len(means))
				for l := range sum {
					sum[l] = make([]float64, len(means[l]))
				}
			}
			for l := range means {
				for d, x := range means[l] {
					sum[l][d] += x
				}
			}
		}
	}
	for l := range sum {
		for d := range sum[l] {
			sum[l][d] /= float64(len(prompts))
		}
	}
	return sum, nil
}

// LayerCosines returns the cosine similarity of a's and b's rows at every
// layer, in float64; NaN where either row has zero length. Vectors of
// different shapes are refused.
func LayerCosines(a, b *RefusalVector) ([]float64, error) {
	if len(a.Data) != len(b.Data) || a.DModel != b.DModel {
		return nil, fmt.Errorf("cannot compare a refusal vector of shape [%d, %d] with one of shape [%d, %d]: use vectors of the same model",
			len(a.Data), a.DModel, len(b.Data), b.DModel)
	}
	out := make([]float64, len(a.Data))
	for l := range a.Data {
		if len(a.Data[l]) != len(b.Data[l]) {
			return nil, fmt.Errorf("layer %d has %d values in one vector and %d in the other", l, len(a.Data[l]), len(b.Data[l]))
		}
		var dot, na, nb float64
		for d := range a.Data[l] {
			x, y := float64(a.Data[l][d]), float64(b.Data[l][d])
			dot, na, nb = dot+x*y, na+x*x, nb+y*y
		}
		out[l] = math.NaN()
		if na > 0 && nb > 0 {
			out[l] = dot / math.Sqrt(na*nb)
		}
	}
	return out, nil
}

// MustLayerCosines is LayerCosines for notebooks.
func MustLayerCosines(a, b *RefusalVector) []float64 {
	c, err := LayerCosines(a, b)
	if err != nil {
		panic(err)
	}
	return c
}

// LayerCosine is one entry of direction_cosines.json's per_layer.
type LayerCosine struct {
	Layer int `json:"layer"`
	// Cosine between the two rows; null where either has zero length (e.g.
	// layer 0 of the reference direction: every chat prompt ends on the
	// same token, so its embedding is the same).
	Cosine        *float64 `json:"cosine"`
	VectorNorm    float64  `json:"vector_norm"`
	ReferenceNorm float64  `json:"reference_norm"`
}

// DirectionCosines is direction_cosines.json: how the refusal vector's row
// at every layer lines up with the reference method's direction.
type DirectionCosines struct {
	ModelAlias       string        `json:"model_alias"`
	Layer            int           `json:"ablated_layer"` // the layer ablated beside it; -1: none
	PerLayer         []LayerCosine `json:"per_layer"`
	ReferenceMethod  string        `json:"reference_method"`
	HarmfulSource    string        `json:"harmful_source"`
	NHarmful         int           `json:"n_harmful"`
	HarmlessDataset  string        `json:"harmless_dataset"` // its validation split
	HarmlessSeed     int64         `json:"harmless_seed"`
	NHarmless        int           `json:"n_harmless"`
	HarmlessExamples []string      `json:"harmless_instructions"`
}

// CompareDirections puts v and the reference direction ref side by side,
// layer by layer (cfg: the settings ref was made with; layer: the one
// ablated, -1 for none).
func CompareDirections(v, ref *RefusalVector, cfg DirectionConfig, layer int) (*DirectionCosines, error) {
	cfg = cfg.WithDefaults()
	cos, err := LayerCosines(v, ref)
	if err != nil {
		return nil, err
	}
	harmful, harmless, err := DirectionPlan(cfg)
	if err != nil {
		return nil, err
	}
	source := JailbreakBenchSource
	if cfg.Harmful != nil {
		source = "given instructions"
	}
	out := &DirectionCosines{ModelAlias: cmp.Or(v.Model, ref.Model), Layer: layer,
		ReferenceMethod: "difference of mean residual streams at the last prompt token, harmful minus harmless chat-templated instructions",
		HarmfulSource:   source, NHarmful: len(harmful), HarmlessDataset: cmp.Or(cfg.Dataset, AlpacaSource),
		HarmlessSeed: *cfg.HarmlessSeed, NHarmless: len(harmless), HarmlessExamples: harmless}
	vn, rn := v.Norms(), ref.Norms()
	for l, c := range cos {
		e := LayerCosine{Layer: l, VectorNorm: vn[l], ReferenceNorm: rn[l]}
		if !math.IsNaN(c) {
			e.Cosine = &c
		}
		out.PerLayer = append(out.PerLayer, e)
	}
	return out, nil
}

// Cosines returns the per-layer cosines, NaN where undefined.
func (dc *DirectionCosines) Cosines() []float64 {
	out := make([]float64, len(dc.PerLayer))
	for i, e := range dc.PerLayer {
		out[i] = math.NaN()
		if e.Cosine != nil {
			out[i] = *e.Cosine
		}
	}
	return out
}

// DirectionHarmfulHarmless names the reference method's direction where a
// step can take either it or the refusal vector (ablate --direction).
const DirectionHarmfulHarmless = "harmful_harmless"

// ReferenceAblation is the reference method's direction ablated at its own
// layer, as Ablate ablates the refusal vector's.
type ReferenceAblation struct {
	Direction *RefusalVector // harmful − harmless at the last prompt token, [n_layers+1][d_model]
	// Scores ranks its layers by steering score (ScoreLayers) on validation
	// instructions disjoint from its harmless set; nil when cfg.Layer was given.
	Scores   *LayerScores
	Ablation *Ablation
}

// AblateReferenceDirection computes the reference direction
// (ReferenceDirection with dcfg), picks its layer — cfg.Layer when set, else
// the best steering score with tokens on nValidation validation instructions
// (dcfg's seed) that leave out the direction's own harmless instructions, the
// refusal vector's selection applied to this direction — and ablates that
// row with x's refusal instruction inducing refusal, as Ablate does.
// Options: WithProgress (stages "score layers", "ablate").
func AblateReferenceDirection(m *models.Model, x *Extraction, cfg AblateConfig, dcfg DirectionConfig, tokens RefusalTokens, nValidation int, opts ...Option) (*ReferenceAblation, error) {
	dcfg = dcfg.WithDefaults()
	ref, err := ReferenceDirection(m, dcfg)
	if err != nil {
		return nil, err
	}
	out := &ReferenceAblation{Direction: ref}
	if cfg.Layer == nil {
		_, harmless, err := DirectionPlan(dcfg)
		if err != nil {
			return nil, err
		}
		exclude := map[string]bool{}
		for _, s := range harmless {
			exclude[s] = true
		}
		val, err := EvalQueries(dcfg.Dataset, Validation, nValidation, *dcfg.HarmlessSeed, exclude)
		if err != nil {
			return nil, err
		}
		if out.Scores, err = ScoreLayers(m, ref, val, tokens, ScoreConfig{BatchSize: dcfg.BatchSize, ParseSpecialTokens: dcfg.ParseSpecialTokens}, opts...); err != nil {
			return nil, err
		}
		out.Scores.ValidationSeed, out.Scores.ValidationQueries = *dcfg.HarmlessSeed, val
		// Row 0 is exactly zero: every chat template ends its prompt with
		// the same token, whose embedding harmful and harmless share. A
		// zero row steers nothing and gives no direction to ablate.
		out.Scores.PerLayerScores = slices.DeleteFunc(out.Scores.PerLayerScores, func(s LayerScore) bool { return !(s.VectorNorm > 0) })
		if len(out.Scores.PerLayerScores) == 0 {
			return nil, fmt.Errorf("the %s direction is zero at every layer: its harmful and harmless prompts do not differ", DirectionHarmfulHarmless)
		}
		layer := out.Scores.Selected().Layer
		cfg.Layer = &layer
	}
	withRef := *x
	withRef.Vector = ref
	if out.Ablation, err = Ablate(m, &withRef, cfg, opts...); err != nil {
		return nil, err
	}
	sum := &out.Ablation.Summary
	sum.Direction = DirectionHarmfulHarmless
	sum.AblationSite = strings.Replace(sum.AblationSite, "refusal_vector[", DirectionHarmfulHarmless+"[", 1)
	return out, nil
}
