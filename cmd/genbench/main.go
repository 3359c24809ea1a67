// Command genbench measures batched generation speed of the bundled model on
// every backend that loads here, in each --dtypes, and each backend's
// float32 matmul throughput, and prints a table. With --dtypes it also
// prints the memory: the resident memory the loaded model adds, and the
// peak resident memory from its load to the end of its generations (the
// peak is reset before each load, /proc/self/clear_refs). Memory freed by
// one model is not always returned to the system before the next loads:
// measure one dtype per process for memory figures.
//
//	go run ./cmd/genbench [--backends go,xla:cpu,onnx:cpu] [--batches 1,8,32,64] [--tokens 32] [--dtypes float32,bfloat16,float16]
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	onnxbackend "github.com/gomlx/compute-onnx" // "onnx:cpu", when ONNX Runtime is installed (backend.sh --with-onnx)
	"github.com/gomlx/compute/dtypes"

	"github.com/refusalkit/refusalkit/cmd/internal/benchutil"
	"github.com/refusalkit/refusalkit/models"
)

func main() {
	backends := flag.String("backends", "go,xla:cpu,onnx:cpu", "comma-separated backends to measure (those that fail to load are reported and skipped)")
	batches := flag.String("batches", "1,8,32,64", "comma-separated batch sizes")
	tokens := flag.Int("tokens", 32, "new tokens per row (generated through stop tokens)")
	modelPath := flag.String("model_path", models.DefaultModel, "model")
	dtypeList := flag.String("dtypes", "float32", "comma-separated dtypes: float32, bfloat16, float16")
	flag.Parse()
	var dts []dtypes.DType
	for _, n := range strings.Split(*dtypeList, ",") {
		dt, err := models.ParseDType(strings.TrimSpace(n))
		if err != nil || dt == dtypes.InvalidDType {
			fmt.Fprintf(os.Stderr, "genbench: --dtypes: %v\n", err)
			os.Exit(2)
		}
		dts = append(dts, dt)
	}
	withDType := false // the dtype and memory columns, when --dtypes is given
	flag.Visit(func(f *flag.Flag) { withDType = withDType || f.Name == "dtypes" })
	onnxbackend.EnableAutoInstall(false) // never download; the library comes from PyPI's onnxruntime

	fmt.Printf("machine: %s/%s, %d CPUs; model %s\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), *modelPath)
	// Fixed widths rather than a tabwriter: each row prints as soon as it is measured.
	const row = "%-12s %6s %10s %9s %10s %15s\n"
	const dtRow = "%-12s %-9s %6s %10s %9s %10s %15s %10s %10s\n"
	if withDType {
		fmt.Printf(dtRow, "backend", "dtype", "batch", "tokens/s", "ms/step", "prefill s", "matmul GFLOP/s", "model MiB", "peak MiB")
	} else {
		fmt.Printf(row, "backend", "batch", "tokens/s", "ms/step", "prefill s", "matmul GFLOP/s")
	}
	for _, name := range strings.Split(*backends, ",") {
		b, err := models.NewBackend(name)
		if err != nil {
			fmt.Printf("%-12s did not load: %s\n", name, firstLine(err))
			continue
		}
		gflops, err := benchutil.MatmulGFLOPS(b, 64, 576, 1536)
		if err != nil {
			fmt.Printf("%-12s matmul failed: %s\n", name, firstLine(err))
			continue
		}
		for _, dt := range dts {
			runtime.GC()
			before := benchutil.RSSMB()
			reset := benchutil.ResetPeakRSS()
			m, err := models.LoadWith(*modelPath, b, models.LoadOptions{DType: dt})
			if err != nil {
				fmt.Fprintf(os.Stderr, "genbench: %v\n", err)
				os.Exit(1)
			}
			runtime.GC()
			modelMB := benchutil.RSSMB() - before
			for _, bs := range ints(*batches) {
				r, err := measure(m, bs, *tokens)
				if err != nil {
					fmt.Printf("%-12s %6d failed: %s\n", name, bs, firstLine(err))
					continue
				}
				if !withDType {
					fmt.Printf(row, name, fmt.Sprint(bs), fmt.Sprintf("%.1f", r.tokensPerSec), fmt.Sprintf("%.1f", r.msPerStep),
						fmt.Sprintf("%.2f", r.prefill), fmt.Sprintf("%.1f", gflops))
					continue
				}
				peak := "n/a"
				if reset {
					peak = fmt.Sprintf("%.0f", benchutil.PeakRSSMB())
				}
				fmt.Printf(dtRow, name, models.DTypeName(dt), fmt.Sprint(bs), fmt.Sprintf("%.1f", r.tokensPerSec), fmt.Sprintf("%.1f", r.msPerStep),
					fmt.Sprintf("%.2f", r.prefill), fmt.Sprintf("%.1f", gflops), fmt.Sprintf("%.0f", modelMB), peak)
			}
			m.Close()
		}
	}
}

type result struct {
	tokensPerSec, msPerStep, prefill float64
}

// measure generates `tokens` tokens for bs rows twice (the first run pays for
// compilation) and reports the second: decoding tokens per second.
func measure(m *models.Model, bs, tokens int) (result, error) {
	prompts := make([]string, bs)
	for i := range prompts {
		prompts[i] = fmt.Sprintf("Give me fact number %d about the ocean.", i+1)
	}
	opts := models.GenerateOptions{MaxNewTokens: tokens, IgnoreStop: true, Sampling: models.Sampling{Temperature: 1, TopK: 64, TopP: 0.95}, Seed: 1}
	if _, err := m.Generate(prompts, opts); err != nil { // the first run compiles prefill and step
		return result{}, err
	}
	start := time.Now()
	g, err := m.Generate(prompts, opts)
	if err != nil {
		return result{}, err
	}
	total := time.Since(start)
	return result{
		tokensPerSec: float64(bs*tokens) / total.Seconds(),
		msPerStep:    g.Decode.Seconds() * 1000 / float64(g.Steps),
		prefill:      g.Prefill.Seconds(),
	}, nil
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && v > 0 {
			out = append(out, v)
		}
	}
	return out
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
