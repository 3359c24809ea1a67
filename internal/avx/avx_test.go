package avx

import (
	"math"
	"testing"
)

// Clearing the upper halves between floating-point steps changes no result:
// Go keeps no vector value in a register across the call, and X15, the
// register Go's ABI holds at zero, keeps its lower half.
func TestClearUpperKeepsResults(t *testing.T) {
	var want, got [64]float64
	for i := range want {
		want[i] = math.Exp(float64(i)/7) * math.Log(float64(i)+2)
	}
	for i := range got {
		ClearUpper()
		x := math.Exp(float64(i) / 7)
		ClearUpper()
		got[i] = x * math.Log(float64(i)+2)
	}
	var zero [16]int64 // zeroed through X15
	if got != want || zero != [16]int64{} {
		t.Errorf("results changed across ClearUpper: %v, want %v", got, want)
	}
}
