// Command bench runs workload W0 — the spec's default extraction and
// evaluation on the bundled model — with refusalkit as built, then the same
// work with Hugging Face transformers (tools/reference/hf_w0.py, in the
// reference venv of tools/setup/pyref.sh), and prints the two side by side,
// phase by phase. Then it runs W0's extraction with the naive method as the
// spec describes it, by the same code (every row
// prefilled, every batch run to its last row, no capture during generation,
// then a batch-1 forward pass per kept response; a full steered forward pass
// per layer and batch in the layer sweep). It also times the extraction at
// --generation_batch_size auto. It prints a table and, as its very last line,
// one JSON object.
//
//	go run ./cmd/bench [--scale 1] [--backend xla:cpu] [--skip_naive] [--w0_only] [--transformers PYTHON|none]
//
// --scale shrinks W0 (n_samples, n_validation and n_test) for a quick look;
// the figures in the README come from --scale 1. Two flags time one part
// alone: --sweep_only RUN_DIR (the layer sweep, by suffix programs and naive) and
// --capture_only N (the capture overhead over N rounds of 5 batch pairs).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"

	"github.com/refusalkit/refusalkit/cmd/internal/benchutil"
	"github.com/refusalkit/refusalkit/internal/progress"
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

type report struct {
	Backend              string  `json:"backend"`
	DType                string  `json:"dtype"`
	W0ExtractS           float64 `json:"w0_extract_s"`
	W0EvalS              float64 `json:"w0_eval_s"`
	GenTokensPerS        float64 `json:"gen_tokens_per_s"`
	CaptureOverheadRatio float64 `json:"capture_overhead_ratio"`
	NaiveExtractS        float64 `json:"naive_extract_s"`
	SpeedupVsNaive       float64 `json:"speedup_vs_naive"`
	LayerSweepS          float64 `json:"layer_sweep_s"`
	NaiveLayerSweepS     float64 `json:"naive_layer_sweep_s"`
	MatmulGFLOPS         float64 `json:"matmul_gflops"`
	ModelGFLOPSAchieved  float64 `json:"model_gflops_achieved"`
	PeakRSSMB            float64 `json:"peak_rss_mb"`
	// The side-by-side run of tools/reference/hf_w0.py (transformers), and
	// refusalkit's own W0 with its loading, on the same phases.
	W0S                          float64            `json:"w0_s"`
	HFW0S                        float64            `json:"hf_w0_s,omitempty"`
	SpeedupVsTransformers        float64            `json:"speedup_vs_transformers,omitempty"`
	ExtractSpeedupVsTransformers float64            `json:"extract_speedup_vs_transformers,omitempty"`
	EvalSpeedupVsTransformers    float64            `json:"eval_speedup_vs_transformers,omitempty"`
	Phases                       map[string]float64 `json:"phases_s"`
	HFPhases                     map[string]float64 `json:"hf_phases_s,omitempty"`
	HFVersions                   map[string]string  `json:"hf_versions,omitempty"`
	HFThreads                    int                `json:"hf_threads,omitempty"` // torch.set_num_threads
	Rounds                       int                `json:"rounds"`               // runs per side: each phase the minimum
}

func main() {
	scale := flag.Float64("scale", 1, "fraction of W0's query counts to run (1 = the spec's defaults)")
	backendName := flag.String("backend", "", "backend (default: the fastest that loads)")
	skipNaive := flag.Bool("skip_naive", false, "skip the naive runs")
	w0Only := flag.Bool("w0_only", false, "run only W0, refusalkit's and transformers' (no capture overhead, naive or auto-batch runs)")
	python := flag.String("transformers", defaultPython, `the Python that runs tools/reference/hf_w0.py beside refusalkit ("none": skip the comparison)`)
	modelPath := flag.String("model_path", models.DefaultModel, "model; random:llama2-7b times a random-weight model of Llama-2-7B's shape")
	sweepOnly := flag.String("sweep_only", "", "time only the layer sweep, by suffix programs and naive, on the vector in this run folder")
	dtypeName := flag.String("dtype", "", "float32, bfloat16 or float16 (default: the backend's, see models.DefaultDType)")
	captureOnly := flag.Int("capture_only", 0, "time only the capture overhead, over this many rounds of 5 batch pairs (4 queries)")
	flag.IntVar(&rounds, "rounds", 2, "runs of W0 on each side, alternating which goes first; each phase's minimum is reported")
	flag.Parse()
	if rounds < 1 {
		fmt.Fprintln(os.Stderr, "bench: --rounds must be 1 or more")
		os.Exit(2)
	}
	dt, err := models.ParseDType(*dtypeName)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: --dtype:", err)
		os.Exit(2)
	}
	benchDType = dt
	if *captureOnly > 0 {
		if err := timeCapture(*modelPath, *backendName, *captureOnly); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *sweepOnly != "" {
		if err := timeSweeps(*modelPath, *backendName, *sweepOnly); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *python != "none" {
		if _, err := os.Stat(*python); err != nil {
			fmt.Fprintf(os.Stderr, "bench: --transformers %s: not found: run `bash tools/setup/pyref.sh`, or pass --transformers none to skip the comparison\n", *python)
			os.Exit(2)
		}
		if strings.HasPrefix(*modelPath, "random:") {
			fmt.Fprintf(os.Stderr, "bench: --model_path %s: the transformers comparison needs a checkpoint: pass --transformers none\n", *modelPath)
			os.Exit(2)
		}
	}
	if err := run(*modelPath, *scale, *backendName, *skipNaive || *w0Only, *w0Only, *python); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// benchDType is --dtype (InvalidDType: the backend's default).
var benchDType dtypes.DType

// rounds is --rounds.
var rounds int

// loadModel creates the backend ("" = the fastest that loads) and loads the model on it.
func loadModel(modelPath, backendName string) (*models.Model, error) {
	b, err := models.NewBackend(backendName)
	if err != nil {
		return nil, err
	}
	return models.LoadWith(modelPath, b, models.LoadOptions{DType: benchDType})
}

func scaled(n int, s float64) int { return max(1, int(math.Round(float64(n)*s))) }

func run(modelPath string, scale float64, backendName string, skipNaive, w0Only bool, python string) error {
	start := time.Now()
	m, err := loadModel(modelPath, backendName)
	if err != nil {
		return err
	}
	loadS := time.Since(start).Seconds()
	b := m.Backend
	memory("loading the model")
	r := report{Backend: models.BackendName(b), DType: models.DTypeName(m.DType()), Rounds: rounds}
	if r.MatmulGFLOPS, err = benchutil.MatmulGFLOPS(b, 64, 576, 1536); err != nil {
		return err
	}
	xcfg := refusalkit.ExtractConfig{}.WithDefaults()
	xcfg.NSamples = scaled(xcfg.NSamples, scale)
	if !strings.HasPrefix(strings.ToLower(modelPath), "qwen2.5-coder-") {
		// The bundled SmolLM2 ignores the spec's refusal instruction; the
		// demo's wording, as make demo passes it. W1's models obey the spec's.
		xcfg.RefusalInstructions = []string{refusalkit.DeclineInstruction}
	}
	show := refusalkit.WithProgress(progress.New(os.Stderr))

	// refusalkit as built: fan-out prefill, capture during generation.
	stats := &benchutil.GenerationStats{}
	start = time.Now()
	x, err := extract(m, xcfg, show, refusalkit.WithGenerator(benchutil.Counting(m, stats)))
	if err != nil {
		return err
	}
	r.W0ExtractS = time.Since(start).Seconds()
	r.GenTokensPerS = float64(stats.NewTokens) / stats.Seconds
	r.ModelGFLOPSAchieved = 2 * float64(m.NumParameters()) * float64(stats.TokensProcessed) / stats.Seconds / 1e9

	memory("extract")

	// Evaluation as built, in memory, with the layer sweep timed apart.
	ecfg := refusalkit.EvalConfig{}.WithDefaults()
	ecfg.NValidation, ecfg.NTest = scaled(ecfg.NValidation, scale), scaled(ecfg.NTest, scale)
	start = time.Now()
	ev, err := refusalkit.Evaluate(m, x, ecfg, show)
	if err != nil {
		return err
	}
	r.W0EvalS = time.Since(start).Seconds()
	r.LayerSweepS = ev.Summary.TimingsSeconds["layer_selection"]
	memory("evaluate")
	// The peak of refusalkit as built; the naive and auto runs below come after.
	r.PeakRSSMB = benchutil.PeakRSSMB()
	r.Phases = phasesOf(loadS, x, ev)
	r.W0S = r.Phases["total"]
	fmt.Printf("\nwhere refusalkit's W0 time went (scale %g, %s, %s):\n\n", scale, m.Alias(), r.Backend)
	printProfile(os.Stdout, x, ev)
	fmt.Printf("\nrefusalkit: kept %d/%d compliant and %d/%d refusal replies; selected layer %d (steering score %.3f, baseline %.3f)\n",
		len(x.FilteredCompliant), len(x.Compliant), len(x.FilteredRefusal), len(x.Refusal),
		ev.Summary.SelectedLayer, ev.Summary.SelectedLayerSteeringScore, ev.Summary.BaselineRefusalScore)

	// transformers on the same work, right after, on the same machine; then,
	// for each further round, both again, the side that goes first
	// alternating (transformers first in round 2), each phase's minimum kept:
	// a shared machine's drifts and stray load only ever add time.
	if python != "none" {
		hf, err := runTransformers(python, m, x, ev, xcfg, ecfg)
		if err != nil {
			return err
		}
		for round := 1; round < rounds; round++ {
			again := func() error {
				more, err := runTransformers(python, m, x, ev, xcfg, ecfg)
				if err == nil {
					hf.Seconds = minPhases(hf.Seconds, more.Seconds)
				}
				return err
			}
			if round%2 == 1 {
				if err := again(); err != nil {
					return err
				}
			}
			p, err := rerunRefusalkit(m.Path, m.Backend, xcfg, ecfg)
			if err != nil {
				return err
			}
			r.Phases = minPhases(r.Phases, p)
			if round%2 == 0 {
				if err := again(); err != nil {
					return err
				}
			}
		}
		r.W0S, r.W0ExtractS, r.W0EvalS, r.LayerSweepS = r.Phases["total"], r.Phases["extraction"]-r.Phases["load"], r.Phases["evaluation"], r.Phases["layer_selection"]
		r.HFPhases, r.HFVersions, r.HFThreads = hf.Seconds, hf.Versions, hf.Threads
		r.HFW0S = hf.Seconds["total"]
		r.SpeedupVsTransformers = r.HFW0S / r.W0S
		r.ExtractSpeedupVsTransformers = hf.Seconds["extraction"] / r.Phases["extraction"]
		r.EvalSpeedupVsTransformers = hf.Seconds["evaluation"] / r.Phases["evaluation"]
		printSideBySide(r, m, scale)
	}
	if w0Only {
		js, _ := json.Marshal(r)
		fmt.Printf("\n%s\n", js)
		return nil
	}

	// After the peak: the lean program is compiled for this measurement only.
	if r.CaptureOverheadRatio, err = captureOverhead(m, xcfg.GenerateConfig, x.Queries[:min(4, len(x.Queries))], 1); err != nil {
		return err
	}

	if !skipNaive {
		// The naive extraction: every row prefilled, every batch run to its
		// last row, no capture, then a separate batch-1 forward pass per kept
		// response.
		start = time.Now()
		nx, err := extract(m, xcfg, show, refusalkit.WithGenerator(benchutil.Naive(m)))
		if err != nil {
			return err
		}
		// Extract found no captured activations and ran them at the batch
		// size; the spec's implementation runs one response at a time.
		for _, rs := range [][]refusalkit.Response{nx.FilteredCompliant, nx.FilteredRefusal} {
			for i := range rs {
				rs[i].Means = nil
			}
			if err := refusalkit.MeanActivations(m, rs, 1); err != nil {
				return err
			}
		}
		r.NaiveExtractS = time.Since(start).Seconds()
		r.SpeedupVsNaive = r.NaiveExtractS / r.W0ExtractS
		start = time.Now()
		if _, err := benchutil.ScoreLayersNaive(m, ev.Vector, ev.Validation, ev.Scores.RefusalTokens, ecfg.BatchSize); err != nil {
			return err
		}
		r.NaiveLayerSweepS = time.Since(start).Seconds()
		memory("naive runs")
	}

	// The same extraction at --generation_batch_size auto: not W0 (whose
	// batch is the spec's 8), but what the command does when asked to batch
	// by memory. Printed in the table only.
	auto := xcfg
	auto.BatchSize = refusalkit.AutoBatchSize(m, xcfg.MaxNewTokens)
	start = time.Now()
	if _, err := extract(m, auto, show); err != nil {
		return err
	}
	autoS := time.Since(start).Seconds()
	memory("extract at auto batch")

	printTable(r, m, scale)
	fmt.Printf("\nextract at --generation_batch_size auto (%d rows): %.2f s", auto.BatchSize, autoS)
	if !skipNaive {
		fmt.Printf(", %.2fx the naive extraction at batch %d", r.NaiveExtractS/autoS, xcfg.BatchSize)
	}
	fmt.Print("\n\n")
	js, _ := json.Marshal(r)
	fmt.Println(string(js))
	return nil
}

// captureOverhead times W0's compliant generation of the queries with capture
// (the shared program, as built) and without (a lean program that has no
// capture), batch by batch: each batch of cfg.BatchSize rows is generated
// once per side, back to back, with the same sampled tokens, the side that
// goes first alternating. It returns the median of the per-batch ratios.
// Whole runs timed one after the other scatter by ±10% on a shared 2-core
// machine, more than the effect; pairing each batch with itself cancels the
// slow drifts and the median drops the batches that compiled a new shape.
func captureOverhead(m *models.Model, cfg refusalkit.GenerateConfig, queries []string, rounds int) (float64, error) {
	var prompts [][]int32
	for _, q := range queries {
		_, ids, err := m.EncodePrompt(refusalkit.UserMessage(q, refusalkit.ModeCompliant, ""))
		if err != nil {
			return 0, err
		}
		for range cfg.NCompletions {
			prompts = append(prompts, ids)
		}
	}
	timeBatch := func(start, end int, capture bool) (float64, error) {
		seeds := make([]uint64, end-start)
		for i := range seeds {
			seeds[i] = uint64(start + i)
		}
		t0 := time.Now()
		_, err := m.GenerateIDs(prompts[start:end], models.GenerateOptions{
			MaxNewTokens: cfg.MaxNewTokens, Sampling: *cfg.Sampling,
			Seed: uint64(*cfg.Seed), RowSeeds: seeds, Capture: capture, Lean: !capture})
		return time.Since(t0).Seconds(), err
	}
	// Warm-up: the first batch compiles the lean program's main shapes.
	for _, capture := range []bool{false, true} {
		if _, err := timeBatch(0, min(cfg.BatchSize, len(prompts)), capture); err != nil {
			return 0, err
		}
	}
	var ratios []float64
	total := map[bool]float64{}
	for round := range rounds {
		for i, start := 0, 0; start < len(prompts); i, start = i+1, start+cfg.BatchSize {
			end := min(start+cfg.BatchSize, len(prompts))
			first := (round+i)%2 == 0 // capture goes first in every other pair
			t := map[bool]float64{}
			for _, capture := range []bool{first, !first} {
				var err error
				if t[capture], err = timeBatch(start, end, capture); err != nil {
					return 0, err
				}
				total[capture] += t[capture]
			}
			ratios = append(ratios, t[true]/t[false])
			fmt.Fprintf(os.Stderr, "capture overhead, rows %d-%d: %.2f s with capture, %.2f s without: %.3f\n", start, end-1, t[true], t[false], t[true]/t[false])
		}
	}
	slices.Sort(ratios)
	median := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 {
		median = (ratios[len(ratios)/2-1] + median) / 2
	}
	fmt.Fprintf(os.Stderr, "capture overhead over %d batch pairs: median %.3f (range %.3f-%.3f), summed times %.3f\n",
		len(ratios), median, ratios[0], ratios[len(ratios)-1], total[true]/total[false])
	return median, nil
}

// timeCapture times the capture overhead alone, longer than the full bench
// does: rounds over 4 W0 queries (5 batch pairs each).
func timeCapture(modelPath, backendName string, rounds int) error {
	m, err := loadModel(modelPath, backendName)
	if err != nil {
		return err
	}
	pool, err := refusalkit.TrainPool("")
	if err != nil {
		return err
	}
	cfg := refusalkit.ExtractConfig{}.WithDefaults()
	queries, err := refusalkit.SampleQueries(pool, 4, *cfg.Seed)
	if err != nil {
		return err
	}
	ratio, err := captureOverhead(m, cfg.GenerateConfig, queries, rounds)
	if err != nil {
		return err
	}
	fmt.Printf("capture overhead on %s, median of %d rounds of 5 batch pairs: %.3f\n", models.BackendName(m.Backend), rounds, ratio)
	return nil
}

// timeSweeps times W0's layer selection alone (32 validation queries, batch
// 8), by suffix programs then naive, on a saved vector.
func timeSweeps(modelPath, backendName, dir string) error {
	m, err := loadModel(modelPath, backendName)
	if err != nil {
		return err
	}
	b := m.Backend
	x, err := runs.ReadExtraction(dir)
	if err != nil {
		return err
	}
	v := x.Vector
	if v == nil {
		return fmt.Errorf("%s holds no refusal vector", dir)
	}
	tokens, err := refusalkit.DeriveRefusalTokens(m, x.FilteredRefusal, x.FilteredCompliant)
	if err != nil {
		return err
	}
	cfg := refusalkit.EvalConfig{}.WithDefaults()
	val, err := refusalkit.EvalQueries("", refusalkit.Validation, cfg.NValidation, *cfg.ValidationSeed, x.Instructions())
	if err != nil {
		return err
	}
	start := time.Now()
	suffix, err := refusalkit.ScoreLayers(m, v, val, tokens, refusalkit.ScoreConfig{BatchSize: cfg.BatchSize})
	if err != nil {
		return err
	}
	suffixS := time.Since(start).Seconds()
	memory("the suffix sweep")
	start = time.Now()
	naive, err := benchutil.ScoreLayersNaive(m, v, val, tokens, cfg.BatchSize)
	if err != nil {
		return err
	}
	naiveS := time.Since(start).Seconds()
	fmt.Printf("layer sweep on %s: suffix programs %.1f s (selects %d), naive %.1f s (selects %d): %.2fx\n",
		models.BackendName(b), suffixS, suffix.Selected().Layer, naiveS, naive.Selected().Layer, naiveS/suffixS)
	return nil
}

// extract runs refusalkit.Extract. A random-weight model never writes a
// refusal phrase, so for it every response of each mode stands in for the
// kept set: the work timed is the same, only the vector is meaningless.
func extract(m *models.Model, cfg refusalkit.ExtractConfig, opts ...refusalkit.Option) (*refusalkit.Extraction, error) {
	x, err := refusalkit.Extract(m, cfg, opts...)
	if errors.Is(err, refusalkit.ErrTooFewResponses) && (strings.HasPrefix(m.Path, "random:") || m.Path == models.TinyRandomModel) {
		x.FilteredRefusal, x.FilteredCompliant = x.Refusal, x.Compliant
		for _, rs := range [][]refusalkit.Response{x.FilteredRefusal, x.FilteredCompliant} {
			if err := refusalkit.MeanActivations(m, rs, cfg.BatchSize); err != nil {
				return nil, err
			}
		}
		x.Vector, err = refusalkit.ComputeRefusalVector(m.Alias(), x.FilteredRefusal, x.FilteredCompliant)
	}
	return x, err
}

// memory reports the resident set after a phase, and the process's peak so far.
func memory(phase string) {
	fmt.Fprintf(os.Stderr, "memory after %s: %.0f MiB resident, peak %.0f MiB\n", phase, benchutil.RSSMB(), benchutil.PeakRSSMB())
}

func printTable(r report, m *models.Model, scale float64) {
	fmt.Printf("\nW0 (scale %g) on %s, model %s (%.1fM parameters)\n\n", scale, r.Backend, m.Alias(), float64(m.NumParameters())/1e6)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(name string, v float64, unit string) { fmt.Fprintf(w, "%s\t%.2f\t%s\t\n", name, v, unit) }
	row("extract (refusalkit)", r.W0ExtractS, "s")
	row("extract (naive)", r.NaiveExtractS, "s")
	row("speed-up vs naive", r.SpeedupVsNaive, "x")
	row("evaluate (refusalkit)", r.W0EvalS, "s")
	row("layer sweep (refusalkit)", r.LayerSweepS, "s")
	row("layer sweep (naive)", r.NaiveLayerSweepS, "s")
	row("generation", r.GenTokensPerS, "new tokens/s")
	row("capture overhead", r.CaptureOverheadRatio, "x")
	row("matmul [64,576]x[576,1536]", r.MatmulGFLOPS, "GFLOP/s")
	row("model throughput", r.ModelGFLOPSAchieved, "GFLOP/s")
	row("peak RSS (as built: extract, evaluate)", r.PeakRSSMB, "MiB")
	w.Flush()
}

// rerunRefusalkit runs W0 again as a fresh run would: the model loaded
// anew (and closed after), extraction and evaluation, and returns its phases.
func rerunRefusalkit(modelPath string, b compute.Backend, xcfg refusalkit.ExtractConfig, ecfg refusalkit.EvalConfig) (map[string]float64, error) {
	start := time.Now()
	m, err := models.LoadWith(modelPath, b, models.LoadOptions{DType: benchDType})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	loadS := time.Since(start).Seconds()
	show := refusalkit.WithProgress(progress.New(os.Stderr))
	x, err := extract(m, xcfg, show)
	if err != nil {
		return nil, err
	}
	ev, err := refusalkit.Evaluate(m, x, ecfg, show)
	if err != nil {
		return nil, err
	}
	return phasesOf(loadS, x, ev), nil
}

// minPhases is each phase's smaller time of a and b; the sums (extraction,
// evaluation, total) are made again from the minima of their parts.
func minPhases(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range a {
		out[k] = v
		if w, ok := b[k]; ok {
			out[k] = math.Min(v, w)
		}
	}
	out["extraction"] = out["load"] + out["generation"] + out["activations"]
	out["evaluation"] = out["layer_selection"] + out["validation_side_effects"] + out["coefficient_sweep"]
	out["total"] = out["extraction"] + out["evaluation"]
	return out
}
