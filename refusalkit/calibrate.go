package refusalkit

import "fmt"

// SpecMaxKL is the default bound on the KL a steering may cause on harmless
// prompts: Arditi et al. (2024) keep candidate directions whose KL on
// harmless prompts is at most 0.1.
const SpecMaxKL = 0.1

// CalibrationGrid is where the coefficient search starts: it tries these in
// order until one reaches the target rate, then bisects below it.
var CalibrationGrid = []float64{0.25, 0.5, 1, 2, 4, 8}

// CalibrationSteps is how many bisections refine the coefficient found on the grid.
const CalibrationSteps = 4

// CalibrationPoint is one coefficient the search tried, on the validation split.
type CalibrationPoint struct {
	Coefficient  float64 `json:"coefficient"`
	RefusalCount int     `json:"refusal_count"`
	TotalCount   int     `json:"total_count"`
	RefusalRate  float64 `json:"refusal_rate"`
	KL           float64 `json:"kl"` // mean over the validation prompts
}

// Calibration is calibration.json: the search for the smallest coefficient
// whose refusal rate reaches the target while the KL stays under the bound.
type Calibration struct {
	TargetRefusalRate float64            `json:"target_refusal_rate"`
	MaxKL             float64            `json:"max_kl"`
	Layer             int                `json:"layer"`
	Split             string             `json:"split"`
	Method            string             `json:"method"`
	Points            []CalibrationPoint `json:"points"` // in the order tried
	Found             bool               `json:"found"`
	Coefficient       float64            `json:"coefficient,omitempty"` // when found
	// AddedToSweep: the found coefficient was not among the configured
	// ones, so the test sweep ran it in addition.
	AddedToSweep bool   `json:"added_to_sweep"`
	Reason       string `json:"reason"`
}

// Calibrate searches for the smallest coefficient c whose refusal rate
// reaches target with a KL at most maxKL, with measure(c) giving both (on
// the validation split, in Evaluate). It tries CalibrationGrid in order
// until a coefficient reaches the target, then bisects CalibrationSteps
// times between it and the grid point below, keeping the smallest that
// reaches it; the result is accepted only if its KL is within the bound
// (the KL grows with c, so no smaller coefficient that reaches the target
// could have a larger one). Refusal rates need not be monotone in c (a
// model pushed too far stops refusing coherently): the grid stops at the
// first coefficient that reaches the target.
func Calibrate(target, maxKL float64, measure func(c float64) (CalibrationPoint, error)) (*Calibration, error) {
	if !(target > 0 && target <= 1) {
		return nil, fmt.Errorf("--target_refusal_rate must be in (0, 1], got %v", target)
	}
	if !(maxKL > 0) {
		return nil, fmt.Errorf("--max_kl must be a positive number, got %v", maxKL)
	}
	cal := &Calibration{TargetRefusalRate: target, MaxKL: maxKL, Split: string(Validation),
		Method: fmt.Sprintf("grid %v until the refusal rate reaches the target, then %d bisections below it", CalibrationGrid, CalibrationSteps)}
	try := func(c float64) (CalibrationPoint, error) {
		p, err := measure(c)
		if err == nil {
			p.Coefficient = c
			cal.Points = append(cal.Points, p)
		}
		return p, err
	}
	lo, hi := 0.0, -1.0
	var best CalibrationPoint
	for _, c := range CalibrationGrid {
		p, err := try(c)
		if err != nil {
			return nil, err
		}
		if p.RefusalRate >= target {
			hi, best = c, p
			break
		}
		lo = c
	}
	if hi < 0 {
		cal.Reason = fmt.Sprintf("no coefficient up to %g reaches a refusal rate of %g", CalibrationGrid[len(CalibrationGrid)-1], target)
		return cal, nil
	}
	for range CalibrationSteps {
		mid := (lo + hi) / 2
		p, err := try(mid)
		if err != nil {
			return nil, err
		}
		if p.RefusalRate >= target {
			hi, best = mid, p
		} else {
			lo = mid
		}
	}
	if best.KL > maxKL {
		cal.Reason = fmt.Sprintf("the smallest coefficient found to reach a refusal rate of %g (c = %g) causes a KL of %.3g, above the bound %g", target, hi, best.KL, maxKL)
		return cal, nil
	}
	cal.Found, cal.Coefficient = true, hi
	cal.Reason = fmt.Sprintf("coefficient %g reaches a refusal rate of %g (target %g) with a KL of %.3g (bound %g)", hi, best.RefusalRate, target, best.KL, maxKL)
	return cal, nil
}
