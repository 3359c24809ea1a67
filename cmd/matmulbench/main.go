// Command matmulbench measures float32 matmul throughput (GFLOP/s) of the GoMLX
// compute backends that load on this machine, for the matmul shapes typical of
// the model (SmolLM-class: hidden 576, MLP 1536, vocab 49152).
//
// Usage (after `source tools/setup/env.sh`):
//
//	go run ./cmd/matmulbench                          # every backend that loads
//	go run ./cmd/matmulbench --backends=go,xla:cpu    # a chosen list
//	GOEXPERIMENT=simd go run ./cmd/matmulbench --backends=go   # Go backend with AVX2/AVX-512 kernels
//
// Each entry of --backends is a compute config string as accepted by
// compute.NewWithConfig / $GOMLX_BACKEND ("go", "go:parallelism=2", "xla:cpu",
// "xla:cuda", "onnx:cpu", "onnx:/abs/path/libonnxruntime.so", ...).
// A backend that fails to load is reported and skipped.
//
// No backend here ever downloads anything: go-xla's autoinstall package is NOT
// imported and both auto-installers are switched off explicitly.
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	// Backends, imported one by one (NOT github.com/gomlx/gomlx/backends/default,
	// which would also link go-xla's auto-installer that downloads from GitHub).
	onnxbackend "github.com/gomlx/compute-onnx"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/gomlx/go-xla/compute/xla"
)

// shape of one matmul: [M,K]x[K,N]; with T the RHS is stored transposed as [N,K]
// (e.g. a tied LM head that reuses the [vocab, hidden] embedding table).
type shape struct {
	M, K, N int
	T       bool
}

func (s shape) String() string {
	if s.T {
		return fmt.Sprintf("[%d,%d]x[%d,%d]^T", s.M, s.K, s.N, s.K)
	}
	return fmt.Sprintf("[%d,%d]x[%d,%d]", s.M, s.K, s.K, s.N)
}
func (s shape) flops() float64 { return 2 * float64(s.M) * float64(s.K) * float64(s.N) }

var defaultShapes = []shape{
	{64, 576, 1536, false},    // MLP up/gate projection, short prompt
	{512, 576, 576, false},    // attention projection, long prompt
	{1, 576, 49152, false},    // LM head, one decoding step
	{2048, 2048, 2048, false}, // large square reference
	{1, 576, 49152, true},     // tied LM head: RHS is the [vocab, hidden] embedding table
}

var (
	flagBackends = flag.String("backends", "all",
		`comma-separated backend configs to benchmark; "all" = go,xla:cpu,onnx:cpu (those that load)`)
	flagWarmup  = flag.Int("warmup", 2, "warm-up executions per shape (the first one also compiles)")
	flagReps    = flag.Int("reps", 10, "maximum timed executions per shape")
	flagMinReps = flag.Int("min_reps", 3, "minimum timed executions per shape")
	flagMaxTime = flag.Duration("max_time", 4*time.Second, "stop timing a shape after this long (once min_reps is reached)")
	flagShapes  = flag.String("shapes", "", `optional override, e.g. "64x576x1536,1x576x49152t" (MxKxN, trailing "t": RHS stored [N,K])`)
)

func main() {
	flag.Parse()

	// Never reach the network: no auto-installers (also settable with GOMLX_NO_AUTO_INSTALL=1).
	xla.EnableAutoInstall(false)
	onnxbackend.EnableAutoInstall(false)

	shapes := defaultShapes
	if *flagShapes != "" {
		shapes = nil
		for _, s := range strings.Split(*flagShapes, ",") {
			var sh shape
			s = strings.TrimSpace(s)
			if strings.HasSuffix(s, "t") {
				sh.T, s = true, strings.TrimSuffix(s, "t")
			}
			if _, err := fmt.Sscanf(s, "%dx%dx%d", &sh.M, &sh.K, &sh.N); err != nil {
				fmt.Fprintf(os.Stderr, "bad --shapes entry %q: %v\n", s, err)
				os.Exit(2)
			}
			shapes = append(shapes, sh)
		}
	}

	configs := strings.Split(*flagBackends, ",")
	if *flagBackends == "all" || *flagBackends == "" {
		configs = []string{"go", "xla:cpu", "onnx:cpu"}
	}

	fmt.Printf("matmulbench: GOMAXPROCS=%d NumCPU=%d %s/%s %s%s\n", runtime.GOMAXPROCS(0), runtime.NumCPU(),
		runtime.GOOS, runtime.GOARCH, runtime.Version(), buildSettings())
	fmt.Printf("registered backends: %v\n\n", sorted(compute.List()))

	type row struct {
		backend string
		gflops  []float64
	}
	var table []row
	for _, config := range configs {
		config = strings.TrimSpace(config)
		if config == "" {
			continue
		}
		backend, err := newBackend(config)
		if err != nil {
			fmt.Printf("== %s: SKIPPED (does not load): %v\n\n", config, firstLine(err))
			continue
		}
		fmt.Printf("== %s: Name()=%q Description()=%q\n", config, backend.Name(), backend.Description())
		r := row{backend: config + " (" + backend.Name() + ")"}
		for _, sh := range shapes {
			g, err := benchShape(backend, sh)
			if err != nil {
				fmt.Printf("   %-22s FAILED: %v\n", sh, firstLine(err))
				g = math.NaN()
			}
			r.gflops = append(r.gflops, g)
		}
		backend.Finalize()
		table = append(table, r)
		fmt.Println()
	}

	// Summary table (markdown).
	fmt.Printf("| backend |")
	for _, sh := range shapes {
		fmt.Printf(" %s |", sh)
	}
	fmt.Printf("\n|---|")
	for range shapes {
		fmt.Printf("---:|")
	}
	fmt.Println()
	for _, r := range table {
		fmt.Printf("| %s |", r.backend)
		for _, g := range r.gflops {
			fmt.Printf(" %.1f |", g)
		}
		fmt.Println()
	}
	fmt.Println("(median GFLOP/s, float32, one MatMul per execution incl. dispatch + result sync)")
}

// newBackend creates the backend, converting panics (compute.NewWithConfig panics on unknown names) into errors.
func newBackend(config string) (b compute.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return compute.NewWithConfig(config)
}

func benchShape(backend compute.Backend, sh shape) (gflops float64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	rng := rand.New(rand.NewPCG(42, uint64(sh.M*sh.K*sh.N)))
	aData := make([]float32, sh.M*sh.K)
	bData := make([]float32, sh.K*sh.N)
	for i := range aData {
		aData[i] = rng.Float32() - 0.5
	}
	for i := range bData {
		bData[i] = rng.Float32() - 0.5
	}
	a := tensors.FromFlatDataAndDimensions(aData, sh.M, sh.K)
	var b *tensors.Tensor
	if sh.T {
		b = tensors.FromFlatDataAndDimensions(bData, sh.N, sh.K)
	} else {
		b = tensors.FromFlatDataAndDimensions(bData, sh.K, sh.N)
	}
	defer func() { _ = a.FinalizeAll(); _ = b.FinalizeAll() }()
	// Inputs live on the device for the whole benchmark: we time the matmul, not host->device copies.
	if err := a.MaterializeOnDevice(backend, false, 0); err != nil {
		return 0, err
	}
	if err := b.MaterializeOnDevice(backend, false, 0); err != nil {
		return 0, err
	}

	exec, err := graph.NewExec(backend, func(x, y *graph.Node) *graph.Node {
		if sh.T {
			return graph.DotGeneral(x, []int{1}, nil, y, []int{1}, nil) // [M,K]·[N,K] -> [M,N]
		}
		return graph.MatMul(x, y)
	})
	if err != nil {
		return 0, err
	}
	defer exec.Finalize()

	// runOnce executes and waits for the result (reading one value back forces completion on async backends).
	var sample [2]float32
	runOnce := func() error {
		out, err := exec.Exec1(a, b)
		if err != nil {
			return err
		}
		defer func() { _ = out.FinalizeAll() }()
		return out.ConstFlatData(func(flat any) {
			f := flat.([]float32)
			sample[0], sample[1] = f[0], f[len(f)-1]
		})
	}

	compileStart := time.Now()
	if err := runOnce(); err != nil {
		return 0, err
	}
	firstRun := time.Since(compileStart)
	// Correctness spot-check of the first and last output elements.
	if err := check(aData, bData, sh, sample); err != nil {
		return 0, err
	}
	for i := 1; i < *flagWarmup; i++ {
		if err := runOnce(); err != nil {
			return 0, err
		}
	}

	var times []time.Duration
	start := time.Now()
	for len(times) < *flagReps && (len(times) < *flagMinReps || time.Since(start) < *flagMaxTime) {
		t0 := time.Now()
		if err := runOnce(); err != nil {
			return 0, err
		}
		times = append(times, time.Since(t0))
	}
	slices.Sort(times)
	median := times[len(times)/2]
	best := times[0]
	gflops = sh.flops() / median.Seconds() / 1e9
	fmt.Printf("   %-22s %8.1f GFLOP/s median (best %6.1f)  %9.3f ms/op  reps=%d  first-run(compile)=%v\n",
		sh, gflops, sh.flops()/best.Seconds()/1e9, float64(median.Microseconds())/1000, len(times),
		firstRun.Round(time.Millisecond))
	return gflops, nil
}

func check(a, b []float32, sh shape, got [2]float32) error {
	dot := func(i, j int) float64 {
		var s float64
		for k := 0; k < sh.K; k++ {
			bv := b[k*sh.N+j]
			if sh.T {
				bv = b[j*sh.K+k]
			}
			s += float64(a[i*sh.K+k]) * float64(bv)
		}
		return s
	}
	want := [2]float64{dot(0, 0), dot(sh.M-1, sh.N-1)}
	for i := range want {
		if diff := math.Abs(float64(got[i]) - want[i]); diff > 1e-3*math.Sqrt(float64(sh.K))+1e-3*math.Abs(want[i]) {
			return fmt.Errorf("wrong result: element %d = %g, want %g", i, got[i], want[i])
		}
	}
	return nil
}

func buildSettings() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var parts []string
	for _, s := range info.Settings {
		switch s.Key {
		case "-tags", "GOEXPERIMENT", "GOAMD64", "CGO_ENABLED":
			parts = append(parts, s.Key+"="+s.Value)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " [" + strings.Join(parts, " ") + "]"
}

func sorted(s []string) []string { slices.Sort(s); return s }

func firstLine(err error) string {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return msg
}
