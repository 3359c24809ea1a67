package refusalkit

import (
	"math"
	"strings"
	"testing"
)

// The search finds a planted threshold on a synthetic rate curve, within
// the bisection's resolution and never below it; it reports a target out
// of reach, and a coefficient whose KL breaks the bound.
func TestCalibrateFindsPlantedThreshold(t *testing.T) {
	const threshold = 1.37
	curve := func(klPerUnit float64) func(c float64) (CalibrationPoint, error) {
		return func(c float64) (CalibrationPoint, error) {
			p := CalibrationPoint{TotalCount: 20, KL: klPerUnit * c}
			if c >= threshold {
				p.RefusalCount = 19
			} else {
				p.RefusalCount = 4
			}
			p.RefusalRate = float64(p.RefusalCount) / 20
			return p, nil
		}
	}
	cal, err := Calibrate(0.9, 0.1, curve(0.05))
	if err != nil {
		t.Fatal(err)
	}
	resolution := 1.0 / math.Pow(2, CalibrationSteps) // between grid points 1 and 2
	if !cal.Found || cal.Coefficient < threshold || cal.Coefficient > threshold+resolution {
		t.Errorf("found %v, coefficient %g: want one in [%g, %g]", cal.Found, cal.Coefficient, threshold, threshold+resolution)
	}
	if want := 4 + CalibrationSteps; len(cal.Points) != want { // 0.25, 0.5, 1, 2, then the bisections
		t.Errorf("%d points tried, want %d", len(cal.Points), want)
	}
	cal, err = Calibrate(0.9, 0.1, curve(0.5))
	if err != nil {
		t.Fatal(err)
	}
	if cal.Found || !strings.Contains(cal.Reason, "above the bound 0.1") {
		t.Errorf("a KL over the bound: found %v (%s)", cal.Found, cal.Reason)
	}
	cal, err = Calibrate(0.99, 0.1, curve(0.05))
	if err != nil {
		t.Fatal(err)
	}
	if cal.Found || !strings.Contains(cal.Reason, "no coefficient up to 8") || len(cal.Points) != len(CalibrationGrid) {
		t.Errorf("an unreachable target: found %v after %d points (%s)", cal.Found, len(cal.Points), cal.Reason)
	}
	if _, err := Calibrate(0, 0.1, curve(0.05)); err == nil {
		t.Error("target 0 accepted")
	}
}
