// Package benchutil holds what the benchmark programs share: the backend's
// matmul throughput, the process's peak memory, and the baselines and
// counters of the method they time (naive.go), kept out of the public API.
package benchutil

import (
	"bufio"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// MatmulGFLOPS times a float32 [m,k]x[k,n] product on the backend (inputs
// on the device, median of repeated runs after a warm-up).
func MatmulGFLOPS(b compute.Backend, m, k, n int) (float64, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	fill := func(size int) []float32 {
		x := make([]float32, size)
		for i := range x {
			x[i] = rng.Float32() - 0.5
		}
		return x
	}
	x := tensors.FromFlatDataAndDimensions(fill(m*k), m, k)
	y := tensors.FromFlatDataAndDimensions(fill(k*n), k, n)
	for _, t := range []*tensors.Tensor{x, y} {
		if err := t.MaterializeOnDevice(b, false, 0); err != nil {
			return 0, err
		}
	}
	exec, err := graph.NewExec(b, func(x, y *graph.Node) *graph.Node { return graph.MatMul(x, y) })
	if err != nil {
		return 0, err
	}
	once := func() (time.Duration, error) {
		start := time.Now()
		out, err := exec.Call1(x, y)
		if err != nil {
			return 0, err
		}
		_, err = tensors.CopyFlatData[float32](out) // wait for the result
		return time.Since(start), err
	}
	var times []time.Duration
	for i := 0; i < 30; i++ {
		d, err := once()
		if err != nil {
			return 0, err
		}
		if i >= 3 {
			times = append(times, d)
		}
	}
	slices.Sort(times)
	return 2 * float64(m*k*n) / times[len(times)/2].Seconds() / 1e9, nil
}

// ResetPeakRSS resets the process's peak resident memory (VmHWM) to its
// current resident memory (Linux: /proc/self/clear_refs), so that PeakRSSMB
// measures from here; it reports whether it could.
func ResetPeakRSS() bool { return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil }

// PeakRSSMB is the process's peak resident memory (VmHWM) in MiB, 0 if unknown.
func PeakRSSMB() float64 { return procStatusMB("VmHWM:") }

// RSSMB is the process's resident memory now (VmRSS) in MiB, 0 if unknown.
func RSSMB() float64 { return procStatusMB("VmRSS:") }

// procStatusMB reads a kB field of /proc/self/status in MiB.
func procStatusMB(field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
