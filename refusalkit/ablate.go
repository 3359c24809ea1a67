package refusalkit

import (
	"cmp"
	"fmt"
	"io"
	"math"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit/judge"
)

// The ablation's prompt sets, as ablation_summary.json and
// ablation_completions.json name them.
const (
	SetJailbreakBench = "jailbreakbench"  // JailbreakBench's harmful requests, as they are
	SetInducedRefusal = "induced_refusal" // held-out test instructions behind the extraction's refusal instruction
	SetHarmless       = "harmless"        // held-out validation instructions, as they are: what ablation costs
)

// AblateConfig holds directional ablation's settings. Its zero value is the
// default but for Layer, which must be given (WithSelectedLayer fills it from
// an evaluation): greedy decoding of 64 new tokens in batches of 8, all 100
// JailbreakBench requests and 20 induced-refusal prompts made from the test
// split (seed 100), behind the extraction's refusal instruction.
type AblateConfig struct {
	// Layer is the vector's row whose direction is ablated (0..n_layers);
	// nil: none given, which Ablate refuses.
	Layer        *int
	MaxNewTokens int // 0 = 64
	BatchSize    int // 0 = 8
	NInduced     int // induced-refusal prompts; 0 = 20
	NHarmless    int // harmless prompts (validation split) the side effects are measured on; 0 = 20
	// NHarmful takes the first n JailbreakBench requests; 0 = all 100.
	NHarmful     int
	InducedSeed  *int64 // sampling the test split; nil = SpecTestSeed (100)
	HarmlessSeed *int64 // sampling the validation split; nil = SpecValidationSeed (200)
	Dataset      string // the induced prompts' instructions; "" = the embedded ALPACA pool (its test split)
	// RefusalInstruction induces the refusal; "" = the extraction's (its first, when it had several).
	RefusalInstruction string
	// ParseSpecialTokens reads special-token spellings in the prompts as
	// control tokens (models.EncodeOptions).
	ParseSpecialTokens bool
}

// WithDefaults returns c with every zero field but Layer set to its default.
func (c AblateConfig) WithDefaults() AblateConfig {
	c.MaxNewTokens = positiveOr(c.MaxNewTokens, 64)
	c.BatchSize = positiveOr(c.BatchSize, 8)
	c.NInduced = positiveOr(c.NInduced, 20)
	c.NHarmless = positiveOr(c.NHarmless, 20)
	c.InducedSeed = orDefault(c.InducedSeed, SpecTestSeed)
	c.HarmlessSeed = orDefault(c.HarmlessSeed, SpecValidationSeed)
	return c
}

// WithSelectedLayer returns c with Layer set to selected unless it is set.
func (c AblateConfig) WithSelectedLayer(selected int) AblateConfig {
	if c.Layer == nil {
		c.Layer = &selected
	}
	return c
}

// AblationSet holds one prompt set's completions without and with ablation,
// in the same prompt order.
type AblationSet struct {
	Baseline []EvalCompletion `json:"without_ablation"`
	Ablated  []EvalCompletion `json:"with_ablation"`
}

// AblationResult is one prompt set's tallies in ablation_summary.json.
type AblationResult struct {
	Baseline CoefficientResult `json:"without_ablation"`
	Ablated  CoefficientResult `json:"with_ablation"`
}

// Tally counts the refusals of both halves of a set.
func (s AblationSet) Tally() AblationResult {
	return AblationResult{Baseline: Tally(s.Baseline), Ablated: Tally(s.Ablated)}
}

// AblationSummary is ablation_summary.json: the tallies, then provenance.
type AblationSummary struct {
	Provenance // model_path, model_alias, model_hash, tokenizer, backend, dtype, versions
	// Direction is what was ablated: "refusal_vector" (the vector's row) or
	// DirectionHarmfulHarmless (the reference method's row, AblateReferenceDirection).
	Direction      string         `json:"direction"`
	Layer          int            `json:"layer"`
	LayerSource    string         `json:"layer_source"` // how the layer was chosen (set by the caller; "" = given)
	DirectionNorm  float64        `json:"direction_norm"`
	JailbreakBench AblationResult `json:"jailbreakbench"`
	InducedRefusal AblationResult `json:"induced_refusal"`
	// Harmless: held-out validation instructions; its with_ablation kl is
	// the KL the ablation causes on harmless prompts (Arditi et al. 2024).
	Harmless AblationResult `json:"harmless"`

	VectorDir            string             `json:"vector_dir"` // the run folder that holds the vector (set when saved)
	AblationSite         string             `json:"ablation_site"`
	HarmfulSource        string             `json:"harmful_source"`
	NHarmful             int                `json:"n_harmful"`
	InducedDataset       string             `json:"induced_dataset"` // its test split; AlpacaSource for the embedded pool
	InducedSeed          int64              `json:"induced_seed"`
	NInduced             int                `json:"n_induced"`
	RefusalInstruction   string             `json:"refusal_instruction"`
	InducedInstructions  []string           `json:"induced_instructions"`
	HarmlessSeed         int64              `json:"harmless_seed"`
	HarmlessInstructions []string           `json:"harmless_instructions"`
	Decoding             string             `json:"decoding"`
	MaxNewTokens         int                `json:"max_new_tokens"`
	BatchSize            int                `json:"batch_size"`
	Judge                string             `json:"judge"`
	TimingsSeconds       map[string]float64 `json:"timings_seconds"`
	ParseSpecialTokens   bool               `json:"parse_special_tokens"`
}

// Ablation holds everything a directional ablation produced.
type Ablation struct {
	Config    AblateConfig // with its defaults filled in
	Direction []float32    // the unit direction ablated
	Harmful   []string     // JailbreakBench's requests, as prompted
	Induced   []string     // the test instructions the refusal instruction was put before
	Harmless  []string     // the validation instructions
	// Sets holds the completions by prompt set: SetJailbreakBench,
	// SetInducedRefusal, SetHarmless. Every completion carries its side
	// effects against the model without ablation (sideeffects.go).
	Sets    map[string]AblationSet
	Summary AblationSummary
}

// AblationDirection returns row layer of v scaled to unit length. A row
// out of range, or of zero (or not finite) length, is refused.
func AblationDirection(v *RefusalVector, layer int) ([]float32, float64, error) {
	if layer < 0 || layer >= len(v.Data) {
		return nil, 0, fmt.Errorf("layer %d is outside the refusal vector's layers 0..%d: choose another layer", layer, len(v.Data)-1)
	}
	norm := v.Norms()[layer]
	if norm == 0 || math.IsNaN(norm) || math.IsInf(norm, 0) {
		return nil, norm, fmt.Errorf("layer %d: the refusal vector's row there has length %g, so it gives no direction to ablate: choose another layer", layer, norm)
	}
	out := make([]float32, len(v.Data[layer]))
	for d, x := range v.Data[layer] {
		out[d] = float32(float64(x) / norm)
	}
	return out, norm, nil
}

// AblationPlan returns the prompts Ablate will use, checking the counts and
// the layer, so they are refused before the model loads: the JailbreakBench
// requests, the induced-refusal instructions (test split) and the harmless
// ones (validation split), leaving out x's instructions.
func AblationPlan(cfg AblateConfig, x *Extraction) (harmful, induced, harmless []string, err error) {
	cfg = cfg.WithDefaults()
	if cfg.Layer == nil {
		return nil, nil, nil, fmt.Errorf("no layer to ablate: give one (AblateConfig.Layer), or take an evaluation's selected layer (WithSelectedLayer)")
	}
	if harmful, err = HarmfulInstructions(); err != nil {
		return nil, nil, nil, err
	}
	if cfg.NHarmful > 0 {
		if cfg.NHarmful > len(harmful) {
			return nil, nil, nil, fmt.Errorf("%d harmful requests asked for but JailbreakBench has %d: lower the count", cfg.NHarmful, len(harmful))
		}
		harmful = harmful[:cfg.NHarmful]
	}
	var exclude map[string]bool
	if x != nil {
		exclude = x.Instructions()
	}
	if induced, err = EvalQueries(cfg.Dataset, Test, cfg.NInduced, *cfg.InducedSeed, exclude); err != nil {
		return nil, nil, nil, err
	}
	if harmless, err = EvalQueries(cfg.Dataset, Validation, cfg.NHarmless, *cfg.HarmlessSeed, exclude); err != nil {
		return nil, nil, nil, err
	}
	return harmful, induced, harmless, nil
}

// Ablate measures whether the direction of x.Vector's row at cfg.Layer
// mediates refusal: it removes the unit direction from every block input
// and every attention and MLP output (directional ablation, Arditi et al.
// 2024) and compares the refusal rate (IsRefusal, greedy decoding) without
// and with it on two prompt sets:
//
//   - JailbreakBench's harmful requests (the model's own refusal),
//   - held-out test instructions behind the extraction's refusal
//     instruction (the refusal the vector was extracted from).
//
// It reads and writes no file. Option: WithProgress (stage "ablate").
func Ablate(m *models.Model, x *Extraction, cfg AblateConfig, opts ...Option) (*Ablation, error) {
	cfg = cfg.WithDefaults()
	if x == nil || x.Vector == nil {
		return nil, fmt.Errorf("the extraction has no refusal vector to ablate (too few kept responses?)")
	}
	v := x.Vector
	if err := v.CheckFits(m.Config); err != nil {
		return nil, err
	}
	if cfg.Layer == nil {
		_, _, _, err := AblationPlan(cfg, x)
		return nil, err
	}
	layer := *cfg.Layer
	dir, norm, err := AblationDirection(v, layer)
	if err != nil {
		return nil, err
	}
	harmful, induced, harmless, err := AblationPlan(cfg, x)
	if err != nil {
		return nil, err
	}
	if cfg.RefusalInstruction == "" {
		cfg.RefusalInstruction = x.Config.WithDefaults().RefusalInstructions[0]
	}
	inducedMessages := make([]string, len(induced))
	for i, s := range induced {
		inducedMessages[i] = UserMessage(s, ModeRefusal, cfg.RefusalInstruction)
	}
	ab := &Ablation{Config: cfg, Direction: dir, Harmful: harmful, Induced: induced, Harmless: harmless, Sets: map[string]AblationSet{}}
	timings := map[string]float64{}
	timed := timer(m, timings, nil)
	progress := collect(opts).report("ablate")
	total, done := 2*(len(harmful)+len(induced)+len(harmless)), 0
	step := func(n int) {
		done += n
		if progress != nil {
			progress(done, total)
		}
	}
	step(0)
	for _, set := range []struct {
		name                   string
		instructions, messages []string
	}{{SetJailbreakBench, harmful, harmful}, {SetInducedRefusal, induced, inducedMessages}, {SetHarmless, harmless, harmless}} {
		var s AblationSet
		if err := timed(set.name, func() (err error) {
			if s.Baseline, err = AblatedCompletions(m, nil, -1, set.instructions, set.messages, cfg, step); err != nil {
				return err
			}
			if s.Ablated, err = AblatedCompletions(m, dir, layer, set.instructions, set.messages, cfg, step); err != nil {
				return err
			}
			// Side effects against the model without ablation (exactly 0 KL
			// for the baseline), and outcomes by the judge that counts
			// ablate's refusals.
			return sideEffects(m, judge.Substring{}, s.Baseline, []intervened{{cs: s.Baseline, unsteered: true},
				{opts: models.ForwardOptions{Ablate: dir}, cs: s.Ablated}}, cfg.BatchSize)
		}); err != nil {
			return nil, err
		}
		ab.Sets[set.name] = s
	}
	ab.Summary = AblationSummary{
		Provenance: ProvenanceOf(m, nil), Direction: "refusal_vector", Layer: layer, DirectionNorm: norm,
		JailbreakBench: ab.Sets[SetJailbreakBench].Tally(), InducedRefusal: ab.Sets[SetInducedRefusal].Tally(),
		Harmless: ab.Sets[SetHarmless].Tally(), HarmlessSeed: *cfg.HarmlessSeed, HarmlessInstructions: harmless,
		AblationSite:  fmt.Sprintf("the unit direction of refusal_vector[%d] projected out of the stream entering every block, every attention output and every MLP output, at every prompt and generated position", layer),
		HarmfulSource: JailbreakBenchSource, NHarmful: len(harmful),
		InducedDataset: cmp.Or(cfg.Dataset, AlpacaSource), InducedSeed: *cfg.InducedSeed, NInduced: len(induced),
		RefusalInstruction: cfg.RefusalInstruction, InducedInstructions: induced,
		Decoding: "greedy", MaxNewTokens: cfg.MaxNewTokens, BatchSize: cfg.BatchSize,
		Judge:              judge.SubstringMethod + "; " + judge.Normalization,
		TimingsSeconds:     timings,
		ParseSpecialTokens: cfg.ParseSpecialTokens,
	}
	return ab, nil
}

// MustAblate is Ablate for notebooks.
func MustAblate(m *models.Model, x *Extraction, cfg AblateConfig, opts ...Option) *Ablation {
	ab, err := Ablate(m, x, cfg, opts...)
	if err != nil {
		panic(err)
	}
	return ab
}

// AblatedCompletions generates greedy replies to the user messages with the
// unit direction dir ablated everywhere (nil: no intervention) and judges
// them. instructions name the rows (EvalCompletion.Instruction); layer is
// recorded in each (−1 without ablation); done, when set, is told how many
// rows each batch finished.
func AblatedCompletions(m *models.Model, dir []float32, layer int, instructions, messages []string, cfg AblateConfig, done func(int)) ([]EvalCompletion, error) {
	cfg = cfg.WithDefaults()
	if len(instructions) != len(messages) {
		return nil, fmt.Errorf("%d instructions but %d user messages", len(instructions), len(messages))
	}
	texts, prompts, err := encodePrompts(m, messages, models.EncodeOptions{ParseSpecialTokens: cfg.ParseSpecialTokens})
	if err != nil {
		return nil, err
	}
	out := make([]EvalCompletion, 0, len(prompts))
	for start := 0; start < len(prompts); start += cfg.BatchSize {
		end := min(start+cfg.BatchSize, len(prompts))
		g, err := m.GenerateIDs(prompts[start:end], models.GenerateOptions{MaxNewTokens: cfg.MaxNewTokens, Ablate: dir})
		if err != nil {
			return nil, err
		}
		for i := range g.Text {
			out = append(out, EvalCompletion{Instruction: instructions[start+i], Prompt: texts[start+i],
				Response: g.Text[i], IsRefusal: judge.IsRefusal(g.Text[i]), Layer: layer, NTokens: len(g.ReplyIDs(i)),
				PromptTokenIDs: prompts[start+i], GeneratedIDs: g.Tokens[i]})
		}
		if done != nil {
			done(end - start)
		}
	}
	return out, nil
}

// PrintTallies writes one line per prompt set: refusals without and with
// ablation, and what the ablation costs (KL, perplexity, degenerate completions).
func (ab *Ablation) PrintTallies(w io.Writer) {
	for _, name := range []string{SetJailbreakBench, SetInducedRefusal, SetHarmless} {
		r := ab.Sets[name].Tally()
		fmt.Fprintf(w, "%-16s refused %d of %d without ablation, %d of %d with it; KL %.3f, perplexity %.1f → %.1f, degenerate %d → %d\n", name,
			r.Baseline.RefusalCount, r.Baseline.TotalCount, r.Ablated.RefusalCount, r.Ablated.TotalCount,
			r.Ablated.KL.Mean, r.Baseline.Perplexity.Mean, r.Ablated.Perplexity.Mean, r.Baseline.DegenerateCount, r.Ablated.DegenerateCount)
	}
}
