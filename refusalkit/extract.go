package refusalkit

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/refusalkit/refusalkit/models"
)

// ExtractConfig holds an extraction's settings (the spec's flags). Its zero
// value is the spec's: 20 queries from the embedded ALPACA train split, and
// GenerateConfig's defaults.
type ExtractConfig struct {
	NSamples int    // queries sampled from the train split; 0 = 20
	Dataset  string // instructions file or hub id; "" = the embedded ALPACA
	// Judge names the judge that keeps responses (JudgeByName): "" =
	// DefaultJudge, the spec's substring matching. It decides only which
	// responses are kept, never what is generated.
	Judge string
	GenerateConfig
}

// WithDefaults returns c with every zero field set to the spec's default.
func (c ExtractConfig) WithDefaults() ExtractConfig {
	c.NSamples = positiveOr(c.NSamples, 20)
	if c.Judge == "" {
		c.Judge = DefaultJudge
	}
	c.GenerateConfig = c.GenerateConfig.WithDefaults()
	return c
}

// AutoBatchSize picks the generation batch size from the memory available
// (--generation_batch_size auto): ALPACA instructions with a chat template
// and the refusal instruction fit in 128 prompt tokens.
func AutoBatchSize(m *models.Model, maxNewTokens int) int { return m.AutoBatchSize(128, maxNewTokens) }

// Extraction holds everything an extraction produced.
type Extraction struct {
	Model             string        // the model as loaded (models.Model.Path)
	Config            ExtractConfig // with its defaults filled in
	Queries           []string
	Compliant         []Response // all generated, before filtering
	Refusal           []Response
	FilteredCompliant []Response // kept: compliant responses the judge reads as answers
	FilteredRefusal   []Response // kept: refusal-mode responses the judge reads as refusals
	Vector            *RefusalVector
	Timings           map[string]float64 // seconds per stage
}

// Instructions returns the set of instructions the extraction used: its
// queries and every response's, so that evaluation can keep them out.
func (x *Extraction) Instructions() map[string]bool {
	set := map[string]bool{}
	for _, q := range x.Queries {
		set[q] = true
	}
	for _, rs := range [][]Response{x.Compliant, x.Refusal, x.FilteredCompliant, x.FilteredRefusal} {
		for _, r := range rs {
			set[r.Instruction] = true
		}
	}
	return set
}

// Extract runs the method's extraction on a loaded model, in memory:
//
//  1. sample queries from the train split (SampleQueries),
//  2. answer each in both modes (GenerateResponses),
//  3. keep what the judge agrees with (FilterResponses),
//  4. average each kept response's residual stream (MeanActivations),
//  5. take the difference of means at every layer (ComputeRefusalVector).
//
// It reads and writes no file (a runs.Run saves the result). When a side
// keeps no response it returns the Extraction, with every response, and an
// error wrapping ErrTooFewResponses.
func Extract(m *models.Model, cfg ExtractConfig, opts ...Option) (*Extraction, error) {
	cfg = cfg.WithDefaults()
	judge, err := JudgeByName(cfg.Judge)
	if err != nil {
		return nil, err
	}
	x := &Extraction{Model: m.Path, Config: cfg, Timings: map[string]float64{}}
	timed := timer(x.Timings)
	start := time.Now()
	defer func() { x.Timings["total"] = time.Since(start).Seconds() }()
	pool, err := TrainPool(cfg.Dataset)
	if err != nil {
		return nil, err
	}
	if x.Queries, err = SampleQueries(pool, cfg.NSamples, *cfg.Seed); err != nil {
		return nil, err
	}
	for _, mode := range []Mode{ModeCompliant, ModeRefusal} {
		var rs []Response
		if err := timed("generate_"+string(mode), func() (err error) {
			rs, err = GenerateResponses(m, x.Queries, mode, cfg.GenerateConfig, opts...)
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
	// The response files carry the run's judge's verdicts (generation
	// records the substring judge's, so a checkpoint does not depend on the judge).
	JudgeResponses(judge, x.Compliant)
	JudgeResponses(judge, x.Refusal)
	x.FilteredCompliant = FilterResponsesWith(judge, x.Compliant, false)
	x.FilteredRefusal = FilterResponsesWith(judge, x.Refusal, true)
	if err := timed("activations", func() error {
		if err := MeanActivations(m, x.FilteredCompliant, cfg.BatchSize); err != nil {
			return err
		}
		return MeanActivations(m, x.FilteredRefusal, cfg.BatchSize)
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

// MustExtract is Extract for notebooks.
func MustExtract(m *models.Model, cfg ExtractConfig, opts ...Option) *Extraction {
	x, err := Extract(m, cfg, opts...)
	if err != nil {
		panic(err)
	}
	return x
}

// TrainPool returns the instructions extraction samples from: the ALPACA
// train split, or the train split of a given dataset file.
func TrainPool(dataset string) ([]string, error) {
	all, err := LoadInstructions(dataset)
	if err != nil {
		return nil, err
	}
	return Instructions(all, Train), nil
}

// LoadInstructions reads the embedded ALPACA pool ("") or a dataset.
func LoadInstructions(dataset string) ([]string, error) {
	if dataset == "" {
		return LoadAlpaca()
	}
	return LoadDataset(dataset)
}

// DatasetName describes a dataset setting as metadata records it.
func DatasetName(d string) string {
	if d == "" {
		return AlpacaSource + " (train split)"
	}
	return d
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
