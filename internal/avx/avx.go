// Package avx works around the AVX-SSE transition penalty that Go code
// built with GOEXPERIMENT=simd (tools/setup/env.sh sets it for the pure-Go
// backend's kernels) pays on Intel CPUs: code of that build leaves the upper
// halves of the vector registers dirty, and every legacy-SSE instruction
// after that (math.Exp's and math.Log's assembly among them) then waits on
// the hardware merging them. On this project's Intel Xeon, RefusalScore's
// 49,152 exps took 25 ms a row instead of 0.7 ms (24.9 s of a 78 s layer
// sweep); AMD CPUs have no such penalty. The Go issue is golang/go#80835.
package avx

// ClearUpper zeroes the upper halves of the vector registers (VZEROUPPER)
// where the CPU has AVX, so that the scalar floating-point loop that
// follows runs at full speed. Nothing in Go's ABI keeps a vector value in
// a register across a call, so clearing them here loses nothing.
func ClearUpper() {
	if hasAVX {
		vzeroupper()
	}
}
