// Command genbench measures batched generation speed of the bundled model on
// every backend that loads here, and each backend's float32 matmul
// throughput, and prints a table.
//
//	go run ./cmd/genbench [--backends go,xla:cpu] [--batches 1,8,32,64] [--tokens 32]
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gomlx/compute"

	"github.com/refusalkit/refusalkit/internal/benchutil"
	"github.com/refusalkit/refusalkit/models"
)

func main() {
	backends := flag.String("backends", "go,xla:cpu", "comma-separated backends to measure (those that fail to load are reported and skipped)")
	batches := flag.String("batches", "1,8,32,64", "comma-separated batch sizes")
	tokens := flag.Int("tokens", 32, "new tokens per row (generated through stop tokens)")
	modelPath := flag.String("model_path", models.DefaultModel, "model")
	flag.Parse()

	fmt.Printf("machine: %s/%s, %d CPUs; model %s\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), *modelPath)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "backend\tbatch\ttokens/s\tms/step\tprefill s\tmatmul GFLOP/s\t")
	for _, name := range strings.Split(*backends, ",") {
		b, err := newBackend(name)
		if err != nil {
			fmt.Fprintf(w, "%s\t-\tdid not load: %s\t\t\t\t\n", name, firstLine(err))
			continue
		}
		gflops, err := benchutil.MatmulGFLOPS(b, 64, 576, 1536)
		if err != nil {
			fmt.Fprintf(w, "%s\t-\tmatmul failed: %s\t\t\t\t\n", name, firstLine(err))
			continue
		}
		m, err := models.Load(*modelPath, b)
		if err != nil {
			fmt.Fprintf(os.Stderr, "genbench: %v\n", err)
			os.Exit(1)
		}
		for _, bs := range ints(*batches) {
			r, err := measure(m, bs, *tokens)
			if err != nil {
				fmt.Fprintf(w, "%s\t%d\tfailed: %s\t\t\t\t\n", name, bs, firstLine(err))
				continue
			}
			fmt.Fprintf(w, "%s\t%d\t%.1f\t%.1f\t%.2f\t%.1f\t\n", b.Name(), bs, r.tokensPerSec, r.msPerStep, r.prefill, gflops)
			w.Flush()
		}
		m.Close()
	}
	w.Flush()
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
	opts := models.GenerateOptions{MaxNewTokens: tokens, IgnoreStop: true, Temperature: 1, TopK: 64, TopP: 0.95, Seed: 1}
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

func newBackend(name string) (b compute.Backend, err error) {
	defer func() { // compute panics on unregistered names
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return models.NewBackend(name)
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
