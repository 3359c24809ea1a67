package refusalkit

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/refusalkit/refusalkit/models"
)

// Output files of an extraction run (the spec's names).
const (
	MetadataFile                   = "metadata.json"
	CompliantResponsesFile         = "compliant_responses.json"
	RefusalResponsesFile           = "refusal_responses.json"
	FilteredCompliantResponsesFile = "filtered_compliant_responses.json"
	FilteredRefusalResponsesFile   = "filtered_refusal_responses.json"
)

// ExtractConfig gathers the extraction settings (the spec's flags).
type ExtractConfig struct {
	ModelPath string
	NSamples  int
	Dataset   string // "" = the embedded ALPACA train split
	GenerateConfig
}

// AutoBatchSize picks the generation batch size from the memory available
// (--generation_batch_size auto): ALPACA instructions with a chat template
// and the refusal instruction fit in 128 prompt tokens.
func AutoBatchSize(m *models.Model, maxNewTokens int) int { return m.AutoBatchSize(128, maxNewTokens) }

// DefaultExtractConfig returns the spec's defaults for a model.
func DefaultExtractConfig(modelPath string) ExtractConfig {
	return ExtractConfig{ModelPath: modelPath, NSamples: 20, GenerateConfig: DefaultGenerateConfig()}
}

// Extraction holds everything an extraction run produced.
type Extraction struct {
	Config            ExtractConfig
	Queries           []string
	Compliant         []Response // all generated, before filtering
	Refusal           []Response
	FilteredCompliant []Response // kept: compliant responses the judge calls non-refusals
	FilteredRefusal   []Response // kept: refusal-mode responses the judge calls refusals
	Vector            *RefusalVector
	Timings           map[string]float64 // seconds per stage
}

// Metadata is metadata.json: the spec's fields first, then the provenance
// a researcher needs to reproduce the run.
type Metadata struct {
	NQueries                     int     `json:"n_queries"`
	NCompletionsPerQuery         int     `json:"n_completions_per_query"`
	NCompliantResponsesGenerated int     `json:"n_compliant_responses_generated"`
	NRefusalResponsesGenerated   int     `json:"n_refusal_responses_generated"`
	NCompliantResponsesKept      int     `json:"n_compliant_responses_kept"`
	NRefusalResponsesKept        int     `json:"n_refusal_responses_kept"`
	CompliantFilterRate          float64 `json:"compliant_filter_rate"`
	RefusalFilterRate            float64 `json:"refusal_filter_rate"`
	Seed                         int64   `json:"seed"`
	VectorShape                  []int   `json:"vector_shape"`

	ModelPath          string             `json:"model_path"`
	ModelAlias         string             `json:"model_alias"`
	ModelSource        string             `json:"model_source"`
	ModelConfig        models.Config      `json:"model_config"`
	RefusalInstruction string             `json:"refusal_instruction"`
	ParseSpecialTokens bool               `json:"parse_special_tokens"`
	Dataset            string             `json:"dataset"`
	Split              string             `json:"split"`
	Queries            []string           `json:"queries"`
	MaxNewTokens       int                `json:"max_new_tokens"`
	BatchSize          int                `json:"generation_batch_size"`
	Sampling           map[string]float64 `json:"sampling"`
	Judge              map[string]any     `json:"judge"`
	Activations        string             `json:"activations"`
	Backend            string             `json:"backend"`
	DType              string             `json:"dtype"`
	Versions           map[string]string  `json:"versions"`
	TimingsSeconds     map[string]float64 `json:"timings_seconds"`
	Complete           bool               `json:"complete"`
}

// rate is kept/generated, 0 when nothing was generated.
func rate(kept, generated int) float64 {
	if generated == 0 {
		return 0
	}
	return float64(kept) / float64(generated)
}

// MetadataFor builds metadata.json's content for an extraction.
func MetadataFor(m *models.Model, x *Extraction) Metadata {
	c := x.Config
	md := Metadata{
		NQueries: len(x.Queries), NCompletionsPerQuery: c.NCompletions,
		NCompliantResponsesGenerated: len(x.Compliant), NRefusalResponsesGenerated: len(x.Refusal),
		NCompliantResponsesKept: len(x.FilteredCompliant), NRefusalResponsesKept: len(x.FilteredRefusal),
		CompliantFilterRate: rate(len(x.FilteredCompliant), len(x.Compliant)),
		RefusalFilterRate:   rate(len(x.FilteredRefusal), len(x.Refusal)),
		Seed:                c.Seed,
		ModelPath:           c.ModelPath, ModelAlias: m.Alias(), ModelSource: m.Source, ModelConfig: m.Config,
		RefusalInstruction: c.RefusalInstruction, ParseSpecialTokens: c.ParseSpecialTokens, Dataset: datasetName(c.Dataset), Split: SplitDescription,
		Queries: x.Queries, MaxNewTokens: c.MaxNewTokens, BatchSize: c.BatchSize,
		Sampling: map[string]float64{"temperature": c.Temperature, "top_p": c.TopP, "top_k": float64(c.TopK)},
		Judge: map[string]any{"method": JudgeName, "substrings": RefusalSubstrings, "case_insensitive": true,
			"normalization": JudgeNormalization},
		Activations: "mean over each kept response's own generated tokens (no padding, no end-of-turn token) of the residual stream at every boundary, " +
			"accumulated in float64; row 0 = embedding output, row i = stream entering block i, last row = final hidden state after the final norm",
		Backend: m.Backend.Name(), DType: models.DTypeName(m.DType()), Versions: Versions(), TimingsSeconds: x.Timings,
	}
	if x.Vector != nil {
		md.VectorShape = []int{len(x.Vector.Data), x.Vector.DModel}
		md.Complete = true
	}
	return md
}

func datasetName(d string) string {
	if d == "" {
		return AlpacaSource + " (train split)"
	}
	return d
}

// Extract runs the method end to end on a loaded model: sample, generate in
// both modes, filter, extract activations, compute the vector. It writes
// nothing. When a side keeps no response it returns the Extraction (with
// every response) and an error wrapping ErrTooFewResponses.
func Extract(m *models.Model, cfg ExtractConfig, progress func(stage string, done, total int)) (*Extraction, error) {
	x := &Extraction{Config: cfg, Timings: map[string]float64{}}
	timed := timer(x.Timings)
	pool, err := TrainPool(cfg.Dataset)
	if err != nil {
		return nil, err
	}
	if x.Queries, err = SampleQueries(pool, cfg.NSamples, cfg.Seed); err != nil {
		return nil, err
	}
	for _, mode := range []Mode{ModeCompliant, ModeRefusal} {
		gcfg := cfg.GenerateConfig
		if progress != nil {
			gcfg.Progress = func(done, total int) { progress("generate "+string(mode), done, total) }
		}
		var rs []Response
		if err := timed("generate_"+string(mode), func() (err error) {
			rs, err = GenerateResponses(m, x.Queries, mode, gcfg)
			return err
		}); err != nil {
			return nil, err
		}
		if mode == ModeCompliant {
			x.Compliant = rs
		} else {
			x.Refusal = rs
		}
	}
	x.FilteredCompliant = FilterResponses(x.Compliant, false)
	x.FilteredRefusal = FilterResponses(x.Refusal, true)
	if err := timed("activations", func() error {
		if err := ExtractResponseActivations(m, x.FilteredCompliant, cfg.BatchSize, false); err != nil {
			return err
		}
		return ExtractResponseActivations(m, x.FilteredRefusal, cfg.BatchSize, false)
	}); err != nil {
		return nil, err
	}
	err = timed("vector", func() (err error) {
		x.Vector, err = ComputeRefusalVector(m.Alias(), x.FilteredRefusal, x.FilteredCompliant)
		return err
	})
	if errors.Is(err, ErrTooFewResponses) {
		return x, fmt.Errorf("%w. Kept %d of %d compliant and %d of %d refusal responses. "+
			"Try a different --refusal_instruction, raise --n_samples and --n_completions, and read the response files to see what the model does",
			err, len(x.FilteredCompliant), len(x.Compliant), len(x.FilteredRefusal), len(x.Refusal))
	}
	return x, err
}

// TrainPool returns the instructions extraction samples from: the ALPACA
// train split, or the train split of a given dataset file.
func TrainPool(dataset string) ([]string, error) {
	all, err := loadInstructions(dataset)
	if err != nil {
		return nil, err
	}
	return Instructions(all, Train), nil
}

// loadInstructions reads the embedded ALPACA pool ("") or a dataset file.
func loadInstructions(dataset string) ([]string, error) {
	if dataset == "" {
		return LoadAlpaca()
	}
	return LoadDataset(dataset)
}

// SaveExtraction writes the spec's files into dir: every response file and
// metadata.json always, the vector when there is one. metadata.json is
// written last and says "complete": true only with a vector.
func SaveExtraction(dir string, m *models.Model, x *Extraction) error {
	files := map[string][]Response{
		CompliantResponsesFile: x.Compliant, RefusalResponsesFile: x.Refusal,
		FilteredCompliantResponsesFile: x.FilteredCompliant, FilteredRefusalResponsesFile: x.FilteredRefusal,
	}
	for name, rs := range files {
		if rs == nil {
			rs = []Response{}
		}
		if err := WriteJSONAtomic(filepath.Join(dir, name), rs); err != nil {
			return err
		}
	}
	if x.Vector != nil {
		if err := x.Vector.Save(dir); err != nil {
			return err
		}
	}
	return WriteJSONAtomic(filepath.Join(dir, MetadataFile), MetadataFor(m, x))
}

// MustTrainPool is TrainPool for notebooks.
func MustTrainPool(dataset string) []string {
	pool, err := TrainPool(dataset)
	if err != nil {
		panic(err)
	}
	return pool
}

// MustSampleQueries is SampleQueries for notebooks.
func MustSampleQueries(instructions []string, n int, seed int64) []string {
	qs, err := SampleQueries(instructions, n, seed)
	if err != nil {
		panic(err)
	}
	return qs
}

// Peek prints the first n responses, one short block each, for a quick look.
func Peek(w io.Writer, rs []Response, n int) {
	for i, r := range rs[:min(n, len(rs))] {
		verdict := "complies"
		if r.IsRefusal {
			verdict = "REFUSES"
		}
		fmt.Fprintf(w, "[%d] %s | %s\n    %q\n", i, verdict, r.Instruction, r.Response)
	}
}
