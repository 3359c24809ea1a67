package refusalkit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/refusalkit/refusalkit/models"
)

// Output files of an evaluation (the spec's names).
const (
	LayerSelectionFile = "layer_selection_scores.json"
	EvalSummaryFile    = "eval_summary.json"
)

// CompletionsFile names the completions of one coefficient as the spec does:
// eval_completions_coeff_0.0.json, eval_completions_coeff_0.5.json, …
func CompletionsFile(coeff float64) string {
	return "eval_completions_coeff_" + CoeffKey(coeff) + ".json"
}

// CoeffKey formats a coefficient like Python's str(float): 1 → "1.0", 0.5 → "0.5".
func CoeffKey(x float64) string {
	s := strconv.FormatFloat(x, 'f', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}

// EvalConfig gathers the evaluation settings (the spec's flags).
type EvalConfig struct {
	ModelPath      string
	VectorDir      string
	NValidation    int
	NTest          int
	Coefficients   []float64
	MaxNewTokens   int
	BatchSize      int
	ValidationSeed int64
	TestSeed       int64
	// LayerSelection is "steering" (the spec's method, default) or "norm".
	LayerSelection string
	Dataset        string // "" = the embedded ALPACA pool
	// Sample generates the sweep by sampling (Temperature, TopP, TopK, Seed)
	// instead of greedily.
	Sample      bool
	Temperature float64
	TopP        float64
	TopK        int
	Seed        int64
	// ParseSpecialTokens reads special-token spellings in the instructions as
	// control tokens; off, the default, they are plain text (models.EncodeOptions).
	ParseSpecialTokens bool
}

// DefaultEvalConfig returns the spec's defaults.
func DefaultEvalConfig(modelPath, vectorDir string) EvalConfig {
	return EvalConfig{ModelPath: modelPath, VectorDir: vectorDir, NValidation: 32, NTest: 20,
		Coefficients: []float64{0.0, 0.5, 1.0, 2.0, 5.0}, MaxNewTokens: 64, BatchSize: 8,
		ValidationSeed: 200, TestSeed: 100, LayerSelection: "steering",
		Temperature: 1.0, TopP: 0.95, TopK: 64, Seed: 42}
}

// EvalQueries samples n instructions of one split (validation or test),
// leaving out any instruction in exclude (e.g. those a vector was made from).
// Splits are fixed by SplitOf, so validation, test and train never overlap.
func EvalQueries(dataset string, split Split, n int, seed int64, exclude map[string]bool) ([]string, error) {
	all, err := loadInstructions(dataset)
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

// RunResponses are the response files of an extraction run, read back.
type RunResponses struct {
	All               []Response
	FilteredRefusal   []Response
	FilteredCompliant []Response
}

// LoadRunResponses reads a vector folder's response files (any that exist).
func LoadRunResponses(dir string) (*RunResponses, error) {
	rr := &RunResponses{}
	for name, dst := range map[string]*[]Response{
		CompliantResponsesFile: nil, RefusalResponsesFile: nil,
		FilteredRefusalResponsesFile: &rr.FilteredRefusal, FilteredCompliantResponsesFile: &rr.FilteredCompliant,
	} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var rs []Response
		if err := json.Unmarshal(data, &rs); err != nil {
			return nil, fmt.Errorf("%s is not a valid response file (%v): re-run `refusalkit extract`", filepath.Join(dir, name), err)
		}
		rr.All = append(rr.All, rs...)
		if dst != nil {
			*dst = rs
		}
	}
	return rr, nil
}

// Instructions returns the set of instructions in the run's responses.
func (rr *RunResponses) Instructions() map[string]bool {
	set := map[string]bool{}
	for _, r := range rr.All {
		set[r.Instruction] = true
	}
	return set
}

// encodePrompts chat-templates and tokenizes instructions.
func encodePrompts(m *models.Model, instructions []string) ([]string, [][]int32, error) {
	return encodePromptsWith(m, instructions, models.EncodeOptions{})
}

// encodePromptsWith is encodePrompts with tokenization options.
func encodePromptsWith(m *models.Model, instructions []string, opts models.EncodeOptions) ([]string, [][]int32, error) {
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

// LayerScore is one entry of layer_selection_scores.json.
type LayerScore struct {
	Layer                   int     `json:"layer"`
	SteeringScore           float64 `json:"steering_score"`
	ImprovementOverBaseline float64 `json:"improvement_over_baseline"`
	VectorNorm              float64 `json:"vector_norm"`
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

// ScoreLayers computes the steering score of every row of v that sits before
// a block (0..n_layers−1): the mean refusal score over the instructions when
// 1.0 × v[l] is added to the stream entering block l at every position.
// The last row (the final hidden state) has no block after it, so adding
// it could not steer anything. It uses the model's lean layer sweep: one
// clean pass per batch, then only blocks l..n_layers−1 for layer l.
func ScoreLayers(m *models.Model, v *RefusalVector, instructions []string, tokens RefusalTokens, batchSize int, progress func(done, total int)) (*LayerScores, error) {
	return scoreLayers(m, v, instructions, tokens, batchSize, progress, models.EncodeOptions{})
}

// scoreLayers is ScoreLayers with the tokenization options of an evaluation.
func scoreLayers(m *models.Model, v *RefusalVector, instructions []string, tokens RefusalTokens, batchSize int, progress func(done, total int), opts models.EncodeOptions) (*LayerScores, error) {
	if err := v.CheckFits(m.Config); err != nil {
		return nil, err
	}
	_, prompts, err := encodePromptsWith(m, instructions, opts)
	if err != nil {
		return nil, err
	}
	score := func(logits []float32) float64 { return RefusalScore(logits, tokens.IDs) }
	base, perLayer, err := m.LayerSweep(prompts, v.Data[:v.NLayers], batchSize, score, progress)
	if err != nil {
		return nil, err
	}
	return layerScores(v, instructions, tokens, base, perLayer), nil
}

// ScoreLayersNaive computes the same scores as ScoreLayers the way the
// spec's method reads: a full steered forward pass per layer and batch.
// It is kept as the baseline the benchmark compares with.
func ScoreLayersNaive(m *models.Model, v *RefusalVector, instructions []string, tokens RefusalTokens, batchSize int) (*LayerScores, error) {
	_, prompts, err := encodePrompts(m, instructions)
	if err != nil {
		return nil, err
	}
	base, err := RefusalScores(m, prompts, nil, tokens, batchSize)
	if err != nil {
		return nil, err
	}
	perLayer := make([][]float64, v.NLayers)
	for l := range perLayer {
		steer := make([][]models.Steering, len(prompts))
		for i := range steer {
			steer[i] = []models.Steering{v.Steering(l, 1.0)}
		}
		if perLayer[l], err = RefusalScores(m, prompts, steer, tokens, batchSize); err != nil {
			return nil, err
		}
	}
	return layerScores(v, instructions, tokens, base, perLayer), nil
}

// layerScores assembles layer_selection_scores.json from per-prompt scores.
func layerScores(v *RefusalVector, instructions []string, tokens RefusalTokens, base []float64, perLayer [][]float64) *LayerScores {
	out := &LayerScores{BaselineRefusalScore: mean(base), Method: "steering_based", RefusalTokens: tokens, Coefficient: 1.0,
		ValidationQueries: instructions}
	norms := v.Norms()
	for l, s := range perLayer {
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

// EvalCompletion is one entry of eval_completions_coeff_{c}.json.
type EvalCompletion struct {
	Instruction string  `json:"instruction"`
	Prompt      string  `json:"prompt"`
	Response    string  `json:"response"`
	IsRefusal   bool    `json:"is_refusal"`
	Coefficient float64 `json:"coefficient"`
	Layer       int     `json:"layer"`
	NTokens     int     `json:"n_tokens"`
}

// CoefficientResult is one entry of eval_summary.json's results_by_coefficient.
type CoefficientResult struct {
	RefusalCount int     `json:"refusal_count"`
	TotalCount   int     `json:"total_count"`
	RefusalRate  float64 `json:"refusal_rate"`
}

// SteeredCompletions generates replies to the instructions with
// coeff × v[layer] added to the stream entering block layer at every
// position, during prefill and decoding, and judges them. The steering input
// is always present, so coeff 0 runs the very program other coefficients
// run, adding exact zeros.
func SteeredCompletions(m *models.Model, v *RefusalVector, layer int, coeff float64, instructions []string, cfg EvalConfig) ([]EvalCompletion, error) {
	texts, prompts, err := encodePromptsWith(m, instructions, models.EncodeOptions{ParseSpecialTokens: cfg.ParseSpecialTokens})
	if err != nil {
		return nil, err
	}
	out := make([]EvalCompletion, 0, len(prompts))
	for start := 0; start < len(prompts); start += cfg.BatchSize {
		end := min(start+cfg.BatchSize, len(prompts))
		opts := models.GenerateOptions{MaxNewTokens: cfg.MaxNewTokens,
			Steer: []models.Steering{v.Steering(layer, float32(coeff))}}
		if cfg.Sample {
			opts.Temperature, opts.TopP, opts.TopK, opts.Seed = cfg.Temperature, cfg.TopP, cfg.TopK, uint64(cfg.Seed)
			opts.RowSeeds = make([]uint64, end-start)
			for i := range opts.RowSeeds {
				opts.RowSeeds[i] = uint64(start + i)
			}
		}
		g, err := m.GenerateIDs(prompts[start:end], opts)
		if err != nil {
			return nil, err
		}
		for i := range g.Text {
			out = append(out, EvalCompletion{Instruction: instructions[start+i], Prompt: texts[start+i],
				Response: g.Text[i], IsRefusal: IsRefusal(g.Text[i]), Coefficient: coeff, Layer: layer,
				NTokens: len(g.ReplyIDs(i))})
		}
	}
	return out, nil
}

// SweepCoefficients runs SteeredCompletions for every coefficient of cfg.
func SweepCoefficients(m *models.Model, v *RefusalVector, layer int, instructions []string, cfg EvalConfig, progress func(done, total int)) (map[float64][]EvalCompletion, error) {
	out := map[float64][]EvalCompletion{}
	if progress != nil {
		progress(0, len(cfg.Coefficients))
	}
	for i, c := range cfg.Coefficients {
		cs, err := SteeredCompletions(m, v, layer, c, instructions, cfg)
		if err != nil {
			return nil, err
		}
		out[c] = cs
		if progress != nil {
			progress(i+1, len(cfg.Coefficients))
		}
	}
	return out, nil
}

// Tally counts refusals among completions.
func Tally(cs []EvalCompletion) CoefficientResult {
	r := CoefficientResult{TotalCount: len(cs)}
	for _, c := range cs {
		if c.IsRefusal {
			r.RefusalCount++
		}
	}
	if r.TotalCount > 0 {
		r.RefusalRate = float64(r.RefusalCount) / float64(r.TotalCount)
	}
	return r
}

// EvalSummary is eval_summary.json: the spec's fields, then provenance.
type EvalSummary struct {
	ModelPath                  string                       `json:"model_path"`
	SelectedLayer              int                          `json:"selected_layer"`
	LayerSelectionMethod       string                       `json:"layer_selection_method"`
	BaselineRefusalScore       float64                      `json:"baseline_refusal_score"`
	SelectedLayerSteeringScore float64                      `json:"selected_layer_steering_score"`
	NValidationSamples         int                          `json:"n_validation_samples"`
	NTestSamples               int                          `json:"n_test_samples"`
	ValidationSeed             int64                        `json:"validation_seed"`
	TestSeed                   int64                        `json:"test_seed"`
	ResultsByCoefficient       map[string]CoefficientResult `json:"results_by_coefficient"`

	ModelAlias     string             `json:"model_alias"`
	VectorDir      string             `json:"vector_dir"`
	Coefficients   []float64          `json:"coefficients"`
	SteeringSite   string             `json:"steering_site"`
	Decoding       string             `json:"decoding"`
	MaxNewTokens   int                `json:"max_new_tokens"`
	BatchSize      int                `json:"batch_size"`
	RefusalTokens  RefusalTokens      `json:"refusal_tokens"`
	TestQueries    []string           `json:"test_instructions"`
	Judge          string             `json:"judge"`
	Backend        string             `json:"backend"`
	DType          string             `json:"dtype"` // of weights, activations and KV cache (models.LoadOptions)
	Versions       map[string]string  `json:"versions"`
	TimingsSeconds map[string]float64 `json:"timings_seconds"`

	// ParseSpecialTokens: special-token spellings in the instructions were read as control tokens.
	ParseSpecialTokens bool `json:"parse_special_tokens"`
}

// Evaluation holds everything an evaluation run produced.
type Evaluation struct {
	Config      EvalConfig
	Vector      *RefusalVector
	Scores      *LayerScores // as ranked by Config.LayerSelection
	Validation  []string
	Test        []string
	Completions map[float64][]EvalCompletion
	Summary     EvalSummary
}

// Evaluate runs the spec's evaluation on a loaded model: sample disjoint
// validation and test queries, derive the refusal tokens, score every
// steerable layer, select one, and sweep the coefficients. It writes nothing.
func Evaluate(m *models.Model, cfg EvalConfig, refusalTokenIDs []int32, progress func(stage string, done, total int)) (*Evaluation, error) {
	timings := map[string]float64{}
	timed := timer(timings)
	v, err := LoadRefusalVector(cfg.VectorDir)
	if err != nil {
		return nil, err
	}
	if err := v.CheckFits(m.Config); err != nil {
		return nil, err
	}
	run, err := LoadRunResponses(cfg.VectorDir)
	if err != nil {
		return nil, err
	}
	ev := &Evaluation{Config: cfg, Vector: v, Completions: map[float64][]EvalCompletion{}}
	seen := run.Instructions() // safety net: the splits already keep these apart
	if ev.Validation, err = EvalQueries(cfg.Dataset, Validation, cfg.NValidation, cfg.ValidationSeed, seen); err != nil {
		return nil, err
	}
	if ev.Test, err = EvalQueries(cfg.Dataset, Test, cfg.NTest, cfg.TestSeed, seen); err != nil {
		return nil, err
	}
	var tokens RefusalTokens
	if refusalTokenIDs != nil {
		tokens, err = RefusalTokensFromIDs(m, refusalTokenIDs)
	} else {
		tokens, err = DeriveRefusalTokens(m, run.FilteredRefusal, run.FilteredCompliant)
	}
	if err != nil {
		return nil, err
	}
	var layerProgress func(done, total int)
	if progress != nil {
		layerProgress = func(done, total int) { progress("score layers", done, total) }
	}
	if err := timed("layer_selection", func() (err error) {
		ev.Scores, err = scoreLayers(m, v, ev.Validation, tokens, cfg.BatchSize, layerProgress,
			models.EncodeOptions{ParseSpecialTokens: cfg.ParseSpecialTokens})
		return err
	}); err != nil {
		return nil, err
	}
	ev.Scores.ValidationSeed = cfg.ValidationSeed
	if cfg.LayerSelection == "norm" {
		ev.Scores = NormLayerScores(ev.Scores)
	}
	sel := ev.Scores.Selected()
	var sweepProgress func(done, total int)
	if progress != nil {
		sweepProgress = func(done, total int) { progress("sweep coefficients", done, total) }
	}
	if err := timed("coefficient_sweep", func() (err error) {
		ev.Completions, err = SweepCoefficients(m, v, sel.Layer, ev.Test, cfg, sweepProgress)
		return err
	}); err != nil {
		return nil, err
	}
	results := map[string]CoefficientResult{}
	for c, cs := range ev.Completions {
		results[CoeffKey(c)] = Tally(cs)
	}
	decoding := "greedy"
	if cfg.Sample {
		decoding = fmt.Sprintf("sampled: temperature %g, top-p %g, top-k %d, seed %d", cfg.Temperature, cfg.TopP, cfg.TopK, cfg.Seed)
	}
	ev.Summary = EvalSummary{
		ModelPath: cfg.ModelPath, SelectedLayer: sel.Layer, LayerSelectionMethod: ev.Scores.Method,
		BaselineRefusalScore: ev.Scores.BaselineRefusalScore, SelectedLayerSteeringScore: sel.SteeringScore,
		NValidationSamples: len(ev.Validation), NTestSamples: len(ev.Test),
		ValidationSeed: cfg.ValidationSeed, TestSeed: cfg.TestSeed, ResultsByCoefficient: results,
		ModelAlias: m.Alias(), VectorDir: cfg.VectorDir, Coefficients: cfg.Coefficients,
		SteeringSite: fmt.Sprintf("coefficient x refusal_vector[%d] added to the residual stream entering block %d, at every prompt and generated position", sel.Layer, sel.Layer),
		Decoding:     decoding, ParseSpecialTokens: cfg.ParseSpecialTokens, MaxNewTokens: cfg.MaxNewTokens, BatchSize: cfg.BatchSize,
		RefusalTokens: tokens, TestQueries: ev.Test, Judge: JudgeName + "; " + JudgeNormalization,
		Backend: m.Backend.Name(), DType: models.DTypeName(m.DType()), Versions: Versions(), TimingsSeconds: timings,
	}
	return ev, nil
}

// MustEvaluate is Evaluate for notebooks.
func MustEvaluate(m *models.Model, cfg EvalConfig, refusalTokenIDs []int32) *Evaluation {
	ev, err := Evaluate(m, cfg, refusalTokenIDs, nil)
	if err != nil {
		panic(err)
	}
	return ev
}

// SaveEvaluation writes layer_selection_scores.json, one
// eval_completions_coeff_{c}.json per coefficient, and eval_summary.json
// into dir's staging folder (EvalStagingDir), then publishes them together:
// any earlier evaluation's files are removed (eval_summary.json first), each
// new file is renamed into dir, eval_summary.json last, and the staging
// folder is removed. An evaluation killed before the end leaves the staging
// folder behind, so EvaluationState calls it interrupted.
func SaveEvaluation(dir string, ev *Evaluation) error {
	stage := filepath.Join(dir, EvalStagingDir)
	if err := os.RemoveAll(stage); err != nil {
		return err
	}
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return err
	}
	names := []string{LayerSelectionFile}
	if err := WriteJSONAtomic(filepath.Join(stage, LayerSelectionFile), ev.Scores); err != nil {
		return err
	}
	for _, c := range ev.Config.Coefficients {
		name := CompletionsFile(c)
		if slices.Contains(names, name) {
			continue
		}
		if err := WriteJSONAtomic(filepath.Join(stage, name), ev.Completions[c]); err != nil {
			return err
		}
		names = append(names, name)
	}
	if err := WriteJSONAtomic(filepath.Join(stage, EvalSummaryFile), ev.Summary); err != nil {
		return err
	}
	names = append(names, EvalSummaryFile)
	// Publish. The staging folder stays until the last rename: a folder
	// caught in between is an interrupted evaluation, never a finished one.
	if err := os.Remove(filepath.Join(dir, EvalSummaryFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	old, err := EvaluationFiles(dir)
	if err != nil {
		return err
	}
	for _, name := range old {
		if !slices.Contains(names, name) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	for _, name := range names {
		if err := publishRename(filepath.Join(stage, name), filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("publish %s: %w", filepath.Join(dir, name), err)
		}
	}
	syncDir(dir)
	return os.Remove(stage)
}

// publishRename moves a staged file into place (a variable, so a test can
// stop the publication halfway, as a kill would).
var publishRename = os.Rename

// timer returns a helper that records a stage's wall time in seconds.
func timer(into map[string]float64) func(stage string, f func() error) error {
	return func(stage string, f func() error) error {
		start := time.Now()
		err := f()
		into[stage] = time.Since(start).Seconds()
		return err
	}
}

// MustScoreLayers is ScoreLayers for notebooks.
func MustScoreLayers(m *models.Model, v *RefusalVector, instructions []string, tokens RefusalTokens, batchSize int) *LayerScores {
	s, err := ScoreLayers(m, v, instructions, tokens, batchSize, nil)
	if err != nil {
		panic(err)
	}
	return s
}

// MustSweepCoefficients is SweepCoefficients for notebooks.
func MustSweepCoefficients(m *models.Model, v *RefusalVector, layer int, instructions []string, cfg EvalConfig) map[float64][]EvalCompletion {
	out, err := SweepCoefficients(m, v, layer, instructions, cfg, nil)
	if err != nil {
		panic(err)
	}
	return out
}

// MustEvalQueries is EvalQueries for notebooks.
func MustEvalQueries(dataset string, split Split, n int, seed int64, exclude map[string]bool) []string {
	qs, err := EvalQueries(dataset, split, n, seed, exclude)
	if err != nil {
		panic(err)
	}
	return qs
}

// MustDeriveRefusalTokens is DeriveRefusalTokens for notebooks.
func MustDeriveRefusalTokens(m *models.Model, refusal, compliant []Response) RefusalTokens {
	rt, err := DeriveRefusalTokens(m, refusal, compliant)
	if err != nil {
		panic(err)
	}
	return rt
}

// PrintTallies writes one line per coefficient: refusals out of completions.
func PrintTallies(w io.Writer, coeffs []float64, sweep map[float64][]EvalCompletion) {
	for _, c := range coeffs {
		t := Tally(sweep[c])
		fmt.Fprintf(w, "coefficient %-4g refused %d of %d\n", c, t.RefusalCount, t.TotalCount)
	}
}

// PeekSweep prints, for the chosen test instructions (by index), the
// completion at every coefficient: how the replies change as c grows.
func PeekSweep(w io.Writer, coeffs []float64, sweep map[float64][]EvalCompletion, rows ...int) {
	for _, i := range rows {
		if first := sweep[coeffs[0]]; i < len(first) {
			fmt.Fprintf(w, "# %s\n", first[i].Instruction)
		}
		for _, c := range coeffs {
			if i < len(sweep[c]) {
				fmt.Fprintf(w, "  c=%-4g %q\n", c, sweep[c][i].Response)
			}
		}
	}
}
