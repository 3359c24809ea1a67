package refusalkit

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit/judge"
)

// The spec's evaluation seeds.
const (
	SpecValidationSeed int64 = 200
	SpecTestSeed       int64 = 100
)

// EvalConfig holds an evaluation's settings (the spec's flags). Its zero
// value is the spec's: 32 validation and 20 test queries (seeds 200 and
// 100) from the embedded ALPACA pool, layers ranked by steering score,
// refusal tokens derived from the extraction, and SweepConfig's defaults.
type EvalConfig struct {
	NValidation    int    // validation queries for layer selection; 0 = 32
	NTest          int    // test queries for the sweep; 0 = 20
	ValidationSeed *int64 // nil = 200
	TestSeed       *int64 // nil = 100
	// LayerSelection is "steering" (the spec's method; "" means it), "norm",
	// or "steering_kl": the best steering score among the layers whose KL
	// at coefficient 1 on the validation prompts stays within MaxKL.
	LayerSelection string
	// MaxKL bounds the KL of steering_kl and of the calibration; 0 = SpecMaxKL (0.1).
	MaxKL float64
	// TargetRefusalRate, when set (in (0, 1]), calibrates a coefficient on
	// the validation split (Calibrate) and adds it to the test sweep.
	TargetRefusalRate float64
	// RefusalTokenIDs score refusals; nil derives them from the extraction's
	// kept responses (DeriveRefusalTokens).
	RefusalTokenIDs []int32
	Dataset         string // "" = the embedded ALPACA pool (its validation and test splits)
	// SweepConfig sets the sweep; its BatchSize and ParseSpecialTokens also
	// apply to layer selection.
	SweepConfig
}

// WithDefaults returns c with every zero field set to the spec's default.
func (c EvalConfig) WithDefaults() EvalConfig {
	c.NValidation = positiveOr(c.NValidation, 32)
	c.NTest = positiveOr(c.NTest, 20)
	c.ValidationSeed = orDefault(c.ValidationSeed, SpecValidationSeed)
	c.TestSeed = orDefault(c.TestSeed, SpecTestSeed)
	if c.LayerSelection == "" {
		c.LayerSelection = "steering"
	}
	if c.MaxKL == 0 {
		c.MaxKL = SpecMaxKL
	}
	c.SweepConfig = c.SweepConfig.WithDefaults()
	return c
}

// EvalQueries samples n instructions of one split (validation or test),
// leaving out any instruction in exclude (e.g. those a vector was made from).
// Splits are fixed by SplitOf, so validation, test and train never overlap.
func EvalQueries(dataset string, split Split, n int, seed int64, exclude map[string]bool) ([]string, error) {
	all, err := LoadInstructions(dataset)
	if err != nil {
		return nil, err
	}
	var pool []string
	for _, s := range Instructions(all, split) {
		if !exclude[s] {
			pool = append(pool, s)
		}
	}
	if n > len(pool) {
		return nil, fmt.Errorf("%d %s queries requested but the %s split has %d: lower the count", n, split, split, len(pool))
	}
	return SampleQueries(pool, n, seed)
}

// MustEvalQueries is EvalQueries for notebooks.
func MustEvalQueries(dataset string, split Split, n int, seed int64, exclude map[string]bool) []string {
	qs, err := EvalQueries(dataset, split, n, seed, exclude)
	if err != nil {
		panic(err)
	}
	return qs
}

// EvalPlan samples the validation and test queries of an evaluation as
// Evaluate will (exclude: the extraction's instructions), so counts past a
// split are refused before the model loads.
func EvalPlan(cfg EvalConfig, exclude map[string]bool) (validation, test []string, err error) {
	cfg = cfg.WithDefaults()
	if validation, err = EvalQueries(cfg.Dataset, Validation, cfg.NValidation, *cfg.ValidationSeed, exclude); err != nil {
		return nil, nil, err
	}
	if test, err = EvalQueries(cfg.Dataset, Test, cfg.NTest, *cfg.TestSeed, exclude); err != nil {
		return nil, nil, err
	}
	return validation, test, nil
}

// EvalSummary is eval_summary.json: the spec's fields, then provenance.
type EvalSummary struct {
	Provenance                                              // model_path (the spec's first field), model_alias, model_hash, tokenizer, backend, dtype, versions, run_digest, run_settings
	SelectedLayer              int                          `json:"selected_layer"`
	LayerSelectionMethod       string                       `json:"layer_selection_method"`
	BaselineRefusalScore       float64                      `json:"baseline_refusal_score"`
	SelectedLayerSteeringScore float64                      `json:"selected_layer_steering_score"`
	NValidationSamples         int                          `json:"n_validation_samples"`
	NTestSamples               int                          `json:"n_test_samples"`
	ValidationSeed             int64                        `json:"validation_seed"`
	TestSeed                   int64                        `json:"test_seed"`
	ResultsByCoefficient       map[string]CoefficientResult `json:"results_by_coefficient"`

	VectorDir    string    `json:"vector_dir"`   // the run folder that holds the vector (set when saved)
	Coefficients []float64 `json:"coefficients"` // swept: the configured ones, then the calibrated one
	MaxKL        float64   `json:"max_kl"`
	// CalibratedCoefficient is the coefficient calibration.json found, when
	// a target refusal rate was given and one was found.
	CalibratedCoefficient *float64           `json:"calibrated_coefficient,omitempty"`
	SteeringSite          string             `json:"steering_site"`
	Decoding              string             `json:"decoding"`
	MaxNewTokens          int                `json:"max_new_tokens"`
	BatchSize             int                `json:"batch_size"`
	RefusalTokens         RefusalTokens      `json:"refusal_tokens"`
	TestQueries           []string           `json:"test_instructions"`
	Dataset               string             `json:"dataset"` // its validation and test splits; AlpacaSource for the embedded pool
	Judge                 string             `json:"judge"`
	TimingsSeconds        map[string]float64 `json:"timings_seconds"`

	// ParseSpecialTokens: special-token spellings in the instructions were read as control tokens.
	ParseSpecialTokens bool `json:"parse_special_tokens"`
}

// Evaluation holds everything an evaluation produced.
type Evaluation struct {
	Config      EvalConfig // with its defaults filled in
	Vector      *RefusalVector
	Scores      *LayerScores // as ranked by Config.LayerSelection
	Validation  []string
	Test        []string
	Calibration *Calibration // with Config.TargetRefusalRate
	Completions map[float64][]EvalCompletion
	Summary     EvalSummary
	// Profile is the model's work in each stage of Summary.TimingsSeconds.
	Profile map[string]models.Stats
}

// Evaluate runs the spec's evaluation of an extraction's vector, in memory:
//
//  1. sample validation and test queries, disjoint from x's (EvalQueries),
//  2. derive the refusal tokens from x's kept responses (DeriveRefusalTokens),
//  3. score every steerable layer and select one (ScoreLayers),
//  4. sweep the coefficients at that layer (Sweep).
//
// x needs its Vector; its responses give the refusal tokens unless
// cfg.RefusalTokenIDs are set. It reads and writes no file.
func Evaluate(m *models.Model, x *Extraction, cfg EvalConfig, opts ...Option) (*Evaluation, error) {
	cfg = cfg.WithDefaults()
	jd, err := judge.ByName(cfg.Judge)
	if err != nil {
		return nil, err
	}
	timings := map[string]float64{}
	ev := &Evaluation{Config: cfg, Profile: map[string]models.Stats{}}
	timed := timer(m, timings, ev.Profile)
	v := x.Vector
	if v == nil {
		return nil, fmt.Errorf("the extraction has no refusal vector to evaluate (too few kept responses?)")
	}
	if err := v.CheckFits(m.Config); err != nil {
		return nil, err
	}
	ev.Vector = v
	if ev.Validation, ev.Test, err = EvalPlan(cfg, x.Instructions()); err != nil {
		return nil, err
	}
	var tokens RefusalTokens
	if cfg.RefusalTokenIDs != nil {
		tokens, err = RefusalTokensFromIDs(m, cfg.RefusalTokenIDs)
	} else {
		tokens, err = DeriveRefusalTokens(m, x.FilteredRefusal, x.FilteredCompliant)
	}
	if err != nil {
		return nil, err
	}
	score := ScoreConfig{BatchSize: cfg.BatchSize, ParseSpecialTokens: cfg.ParseSpecialTokens}
	if err := timed("layer_selection", func() (err error) {
		ev.Scores, err = ScoreLayers(m, v, ev.Validation, tokens, score, opts...)
		return err
	}); err != nil {
		return nil, err
	}
	ev.Scores.ValidationSeed = *cfg.ValidationSeed
	// The side effects' reference on the validation split: its unsteered
	// greedy continuations (coefficient 0 adds zeros at any layer).
	h := collect(opts)
	if p := h.report("validation side effects"); p != nil {
		p(0, 1) // the unsteered validation completions, then the KL of the selection
	}
	var valUnsteered []EvalCompletion
	if err := timed("validation_side_effects", func() (err error) {
		if p := h.report("validation side effects"); p != nil {
			defer p(1, 1)
		}
		if valUnsteered, err = SteeredCompletions(m, v, 0, 0, ev.Validation, cfg.SweepConfig); err != nil {
			return err
		}
		ev.Scores, err = selectLayer(m, v, ev.Scores, valUnsteered, cfg)
		return err
	}); err != nil {
		return nil, err
	}
	sel := ev.Scores.Selected()
	sweep := cfg.SweepConfig
	if cfg.TargetRefusalRate > 0 {
		if err := timed("calibration", func() (err error) {
			progress, tried := h.report("calibrate"), 0
			most := len(CalibrationGrid) + CalibrationSteps
			if progress != nil {
				progress(0, most)
			}
			ev.Calibration, err = Calibrate(cfg.TargetRefusalRate, cfg.MaxKL, func(c float64) (CalibrationPoint, error) {
				p, err := validationPoint(m, v, sel.Layer, c, ev.Validation, valUnsteered, cfg.SweepConfig)
				if tried++; progress != nil {
					progress(tried, most) // at most: the search may stop early
				}
				return p, err
			})
			if progress != nil && tried < most {
				progress(most, most)
			}
			return err
		}); err != nil {
			return nil, err
		}
		ev.Calibration.Layer = sel.Layer
		if ev.Calibration.Found && !slices.Contains(sweep.Coefficients, ev.Calibration.Coefficient) {
			sweep.Coefficients = append(slices.Clone(sweep.Coefficients), ev.Calibration.Coefficient)
			ev.Calibration.AddedToSweep = true
		}
	}
	if err := timed("coefficient_sweep", func() (err error) {
		ev.Completions, err = Sweep(m, v, sel.Layer, ev.Test, sweep, opts...)
		return err
	}); err != nil {
		return nil, err
	}
	results := map[string]CoefficientResult{}
	for c, cs := range ev.Completions {
		results[CoeffKey(c)] = Tally(cs)
	}
	ev.Summary = EvalSummary{
		Provenance: ProvenanceOf(m, nil), SelectedLayer: sel.Layer, LayerSelectionMethod: ev.Scores.Method,
		BaselineRefusalScore: ev.Scores.BaselineRefusalScore, SelectedLayerSteeringScore: sel.SteeringScore,
		NValidationSamples: len(ev.Validation), NTestSamples: len(ev.Test),
		ValidationSeed: *cfg.ValidationSeed, TestSeed: *cfg.TestSeed, ResultsByCoefficient: results,
		Coefficients: sweep.Coefficients, MaxKL: cfg.MaxKL,
		SteeringSite: fmt.Sprintf("coefficient x refusal_vector[%d] added to the residual stream entering block %d, at every prompt and generated position", sel.Layer, sel.Layer),
		Decoding:     cfg.Decoding(), ParseSpecialTokens: cfg.ParseSpecialTokens, MaxNewTokens: cfg.MaxNewTokens, BatchSize: cfg.BatchSize,
		RefusalTokens: tokens, TestQueries: ev.Test, Dataset: cmp.Or(cfg.Dataset, AlpacaSource), Judge: jd.Describe(),
		TimingsSeconds: timings,
	}
	if ev.Calibration != nil && ev.Calibration.Found {
		ev.Summary.CalibratedCoefficient = &ev.Calibration.Coefficient
	}
	return ev, nil
}

// selectLayer ranks the scored layers by cfg.LayerSelection and records the
// KL that coefficient 1 causes on the validation prompts: at the selected
// layer, or at every layer for steering_kl, which selects among those
// within cfg.MaxKL.
func selectLayer(m *models.Model, v *RefusalVector, scores *LayerScores, valUnsteered []EvalCompletion, cfg EvalConfig) (*LayerScores, error) {
	klAt := func(ls *LayerScore) error {
		kl, err := MeanKL(m, steerAt(v.Steering(ls.Layer, 1)), valUnsteered, cfg.BatchSize)
		if err == nil {
			x := mean(kl)
			ls.KL = &x
		}
		return err
	}
	switch cfg.LayerSelection {
	case "norm":
		scores = NormLayerScores(scores)
	case "steering_kl":
		scores = KLLayerScores(scores, cfg.MaxKL) // a copy, whose entries get their KL
		// Every layer against one clean pass per batch of the validation completions.
		at := make([]models.ForwardOptions, len(scores.PerLayerScores))
		for i, ls := range scores.PerLayerScores {
			at[i] = steerAt(v.Steering(ls.Layer, 1))
		}
		kls, _, err := compareAll(m, at, valUnsteered, cfg.BatchSize)
		if err != nil {
			return nil, err
		}
		for i := range scores.PerLayerScores {
			x := mean(kls[i])
			scores.PerLayerScores[i].KL = &x
		}
		scores = KLLayerScores(scores, cfg.MaxKL)
		if sel := scores.Selected(); *sel.KL > cfg.MaxKL {
			least := sel
			for _, l := range scores.PerLayerScores {
				if *l.KL < *least.KL {
					least = l
				}
			}
			return nil, fmt.Errorf("no layer keeps the KL at coefficient 1 within --max_kl %g (the smallest is %.3g, at layer %d): raise --max_kl or use --layer_selection steering",
				cfg.MaxKL, *least.KL, least.Layer)
		}
		return scores, nil
	}
	return scores, klAt(&scores.PerLayerScores[0])
}

// validationPoint measures coefficient c at layer on the validation
// prompts: the refusal rate of its greedy completions, and the mean KL
// against their unsteered continuations.
func validationPoint(m *models.Model, v *RefusalVector, layer int, c float64, validation []string, valUnsteered []EvalCompletion, cfg SweepConfig) (CalibrationPoint, error) {
	cs, err := SteeredCompletions(m, v, layer, c, validation, cfg)
	if err != nil {
		return CalibrationPoint{}, err
	}
	kl, err := MeanKL(m, steerAt(v.Steering(layer, float32(c))), valUnsteered, cfg.WithDefaults().BatchSize)
	if err != nil {
		return CalibrationPoint{}, err
	}
	t := Tally(cs)
	return CalibrationPoint{Coefficient: c, RefusalCount: t.RefusalCount, TotalCount: t.TotalCount, RefusalRate: t.RefusalRate, KL: mean(kl)}, nil
}

// MustEvaluate is Evaluate for notebooks.
func MustEvaluate(m *models.Model, x *Extraction, cfg EvalConfig, opts ...Option) *Evaluation {
	ev, err := Evaluate(m, x, cfg, opts...)
	if err != nil {
		panic(err)
	}
	return ev
}

// PrintTallies writes the refusals at every coefficient, one line each.
func (ev *Evaluation) PrintTallies(w io.Writer) {
	PrintTallies(w, ev.Summary.Coefficients, ev.Completions)
}

// Peek prints the completions of the chosen test instructions (by index)
// at every coefficient.
func (ev *Evaluation) Peek(w io.Writer, rows ...int) {
	PeekSweep(w, ev.Summary.Coefficients, ev.Completions, rows...)
}

// timer returns a helper that records a stage's wall time in seconds and,
// when profile is not nil, the model's work during it (models.Stats).
func timer(m *models.Model, into map[string]float64, profile map[string]models.Stats) func(stage string, f func() error) error {
	return func(stage string, f func() error) error {
		before, start := m.Stats(), time.Now()
		err := f()
		into[stage] = time.Since(start).Seconds()
		if profile != nil {
			profile[stage] = m.Stats().Sub(before)
		}
		return err
	}
}

// MustDeriveRefusalTokens is DeriveRefusalTokens for notebooks.
func MustDeriveRefusalTokens(m *models.Model, refusal, compliant []Response) RefusalTokens {
	rt, err := DeriveRefusalTokens(m, refusal, compliant)
	if err != nil {
		panic(err)
	}
	return rt
}
