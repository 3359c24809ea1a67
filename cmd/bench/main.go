// Command bench runs workload W0 — the spec's default extraction and
// evaluation on the bundled model — twice: with refusalkit as built, and with
// the naive method as the spec describes it, run by the same code (every row
// prefilled, every batch run to its last row, no capture during generation,
// then a batch-1 forward pass per kept response; a full steered forward pass
// per layer and batch in the layer sweep). It also times the extraction at
// --generation_batch_size auto. It prints a table and, as its very last line,
// one JSON object.
//
//	go run ./cmd/bench [--scale 1] [--backend xla:cpu] [--skip_naive]
//
// --scale shrinks W0 (n_samples, n_validation and n_test) for a quick look;
// the figures in the README come from --scale 1. Two flags time one part
// alone: --sweep_only RUN_DIR (the layer sweep, lean and naive) and
// --capture_only N (the capture overhead over N alternating pairs).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/refusalkit/refusalkit/internal/benchutil"
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
)

// refusalInstruction is the wording the bundled model follows (see the README):
// W0 needs kept refusal responses to build a vector.
const refusalInstruction = "Do not answer the question below; politely decline instead, starting with \"I'm sorry\".\n"

type report struct {
	Backend              string  `json:"backend"`
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
}

func main() {
	scale := flag.Float64("scale", 1, "fraction of W0's query counts to run (1 = the spec's defaults)")
	backendName := flag.String("backend", "", "backend (default: the fastest that loads)")
	skipNaive := flag.Bool("skip_naive", false, "skip the naive runs")
	modelPath := flag.String("model_path", models.DefaultModel, "model; random:llama2-7b times a random-weight model of Llama-2-7B's shape")
	sweepOnly := flag.String("sweep_only", "", "time only the layer sweep, lean and naive, on the vector in this run folder")
	captureOnly := flag.Int("capture_only", 0, "time only the capture overhead, over this many alternating pairs on 4 queries")
	flag.Parse()
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
	if err := run(*modelPath, *scale, *backendName, *skipNaive); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// loadModel creates the backend ("" = the fastest that loads) and loads the model on it.
func loadModel(modelPath, backendName string) (*models.Model, error) {
	b, err := models.NewBackend(backendName)
	if err != nil {
		return nil, err
	}
	return models.Load(modelPath, b)
}

func scaled(n int, s float64) int { return max(1, int(math.Round(float64(n)*s))) }

func run(modelPath string, scale float64, backendName string, skipNaive bool) error {
	m, err := loadModel(modelPath, backendName)
	if err != nil {
		return err
	}
	b := m.Backend
	memory("loading the model")
	r := report{Backend: b.Name()}
	if r.MatmulGFLOPS, err = benchutil.MatmulGFLOPS(b, 64, 576, 1536); err != nil {
		return err
	}
	xcfg := refusalkit.DefaultExtractConfig(modelPath)
	xcfg.NSamples = scaled(xcfg.NSamples, scale)
	xcfg.RefusalInstruction = refusalInstruction
	progress := refusalkit.Progress(os.Stderr)

	// refusalkit as built: fan-out prefill, capture during generation.
	stats := &refusalkit.GenerationStats{}
	xcfg.Stats = stats
	start := time.Now()
	x, err := extract(m, xcfg, progress)
	if err != nil {
		return err
	}
	r.W0ExtractS = time.Since(start).Seconds()
	r.GenTokensPerS = float64(stats.NewTokens) / stats.Seconds
	r.ModelGFLOPSAchieved = 2 * float64(m.NumParameters()) * float64(stats.TokensProcessed) / stats.Seconds / 1e9

	memory("extract")

	// Evaluation as built, with the layer sweep timed apart.
	dir, err := os.MkdirTemp("", "refusalkit-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := refusalkit.SaveExtraction(dir, m, x); err != nil {
		return err
	}
	ecfg := refusalkit.DefaultEvalConfig(modelPath, dir)
	ecfg.NValidation, ecfg.NTest = scaled(ecfg.NValidation, scale), scaled(ecfg.NTest, scale)
	start = time.Now()
	ev, err := refusalkit.Evaluate(m, ecfg, nil, progress)
	if err != nil {
		return err
	}
	r.W0EvalS = time.Since(start).Seconds()
	r.LayerSweepS = ev.Summary.TimingsSeconds["layer_selection"]
	memory("evaluate")
	// The peak of refusalkit as built; the naive and auto runs below come after.
	r.PeakRSSMB = benchutil.PeakRSSMB()

	// After the peak: the lean program is compiled for this measurement only.
	if r.CaptureOverheadRatio, err = captureOverhead(m, xcfg.GenerateConfig, x.Queries[:min(2, len(x.Queries))], 2); err != nil {
		return err
	}

	if !skipNaive {
		// The naive extraction: every row prefilled, every batch run to its
		// last row, no capture, then a separate batch-1 forward pass per kept
		// response.
		naive := xcfg
		naive.Capture, naive.Naive, naive.Stats = false, true, nil
		start = time.Now()
		nx, err := extract(m, naive, progress)
		if err != nil {
			return err
		}
		// Extract found no captured activations and ran them at the batch
		// size; the spec's implementation runs one response at a time.
		for _, rs := range [][]refusalkit.Response{nx.FilteredCompliant, nx.FilteredRefusal} {
			if err := refusalkit.ExtractResponseActivations(m, rs, 1, true); err != nil {
				return err
			}
		}
		r.NaiveExtractS = time.Since(start).Seconds()
		r.SpeedupVsNaive = r.NaiveExtractS / r.W0ExtractS
		start = time.Now()
		if _, err := refusalkit.ScoreLayersNaive(m, ev.Vector, ev.Validation, ev.Scores.RefusalTokens, ecfg.BatchSize); err != nil {
			return err
		}
		r.NaiveLayerSweepS = time.Since(start).Seconds()
		memory("naive runs")
	}

	// The same extraction at --generation_batch_size auto: not W0 (whose
	// batch is the spec's 8), but what the command does when asked to batch
	// by memory. Printed in the table only.
	auto := xcfg
	auto.BatchSize, auto.Stats = refusalkit.AutoBatchSize(m, xcfg.MaxNewTokens), nil
	start = time.Now()
	if _, err := extract(m, auto, progress); err != nil {
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

// captureOverhead times the same generation with capture (the shared
// program, as built) and without (a lean program that has no capture),
// alternating, pairs times each, and returns the ratio of the best times: a
// single pair mostly measures noise. The first run of each side may also
// compile, which the best time leaves out once pairs ≥ 2.
func captureOverhead(m *models.Model, cfg refusalkit.GenerateConfig, queries []string, pairs int) (float64, error) {
	timeGen := func(capture bool) (float64, error) {
		g := cfg
		g.Capture, g.Lean, g.Stats, g.Progress = capture, !capture, nil, nil
		t0 := time.Now()
		_, err := refusalkit.GenerateResponses(m, queries, refusalkit.ModeCompliant, g)
		return time.Since(t0).Seconds(), err
	}
	best := map[bool]float64{true: math.Inf(1), false: math.Inf(1)}
	for range pairs {
		for _, capture := range []bool{false, true} {
			t, err := timeGen(capture)
			if err != nil {
				return 0, err
			}
			best[capture] = min(best[capture], t)
			fmt.Fprintf(os.Stderr, "generation of %d queries, capture %v: %.2f s\n", len(queries), capture, t)
		}
	}
	return best[true] / best[false], nil
}

// timeCapture times the capture overhead alone, longer than the full bench
// does: 4 W0 queries (40 rows per run), pairs alternating pairs.
func timeCapture(modelPath, backendName string, pairs int) error {
	m, err := loadModel(modelPath, backendName)
	if err != nil {
		return err
	}
	pool, err := refusalkit.TrainPool("")
	if err != nil {
		return err
	}
	cfg := refusalkit.DefaultExtractConfig(modelPath)
	queries, err := refusalkit.SampleQueries(pool, 4, cfg.Seed)
	if err != nil {
		return err
	}
	ratio, err := captureOverhead(m, cfg.GenerateConfig, queries, pairs)
	if err != nil {
		return err
	}
	fmt.Printf("capture overhead on %s, best of %d alternating pairs: %.3f\n", m.Backend.Name(), pairs, ratio)
	return nil
}

// timeSweeps times W0's layer selection alone (32 validation queries, batch
// 8), lean then naive, on a saved vector.
func timeSweeps(modelPath, backendName, dir string) error {
	m, err := loadModel(modelPath, backendName)
	if err != nil {
		return err
	}
	b := m.Backend
	v, err := refusalkit.LoadRefusalVector(dir)
	if err != nil {
		return err
	}
	run, err := refusalkit.LoadRunResponses(dir)
	if err != nil {
		return err
	}
	tokens, err := refusalkit.DeriveRefusalTokens(m, run.FilteredRefusal, run.FilteredCompliant)
	if err != nil {
		return err
	}
	cfg := refusalkit.DefaultEvalConfig(modelPath, dir)
	val, err := refusalkit.EvalQueries("", refusalkit.Validation, cfg.NValidation, cfg.ValidationSeed, run.Instructions())
	if err != nil {
		return err
	}
	start := time.Now()
	lean, err := refusalkit.ScoreLayers(m, v, val, tokens, cfg.BatchSize, nil)
	if err != nil {
		return err
	}
	leanS := time.Since(start).Seconds()
	memory("the lean sweep")
	start = time.Now()
	naive, err := refusalkit.ScoreLayersNaive(m, v, val, tokens, cfg.BatchSize)
	if err != nil {
		return err
	}
	naiveS := time.Since(start).Seconds()
	fmt.Printf("layer sweep on %s: lean %.1f s (selects %d), naive %.1f s (selects %d): %.2fx\n",
		b.Name(), leanS, lean.Selected().Layer, naiveS, naive.Selected().Layer, naiveS/leanS)
	return nil
}

// extract runs refusalkit.Extract. A random-weight model never writes a
// refusal phrase, so for it every response of each mode stands in for the
// kept set: the work timed is the same, only the vector is meaningless.
func extract(m *models.Model, cfg refusalkit.ExtractConfig, progress func(string, int, int)) (*refusalkit.Extraction, error) {
	x, err := refusalkit.Extract(m, cfg, progress)
	if errors.Is(err, refusalkit.ErrTooFewResponses) && (strings.HasPrefix(cfg.ModelPath, "random:") || cfg.ModelPath == models.TinyRandomModel) {
		x.FilteredRefusal, x.FilteredCompliant = x.Refusal, x.Compliant
		for _, rs := range [][]refusalkit.Response{x.FilteredRefusal, x.FilteredCompliant} {
			if err := refusalkit.ExtractResponseActivations(m, rs, cfg.BatchSize, false); err != nil {
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
