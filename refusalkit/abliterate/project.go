package abliterate

import (
	"fmt"
	"math"
)

// project removes the unit direction r [d] from x along its d_model axis,
// in place: x is [d, n] (axis 0: an output projection or a bias, n = 1)
// or [n, d] (axis 1: the token embeddings). Sums run in float64; store
// rounds each result to the tensor's dtype (nil: float32). It returns the
// largest |component along r| over x's vectors before, and after with the
// stored values, so the caller can say how much rounding left behind.
func project(x []float32, shape []int, axis int, r []float64, store func(float32) float32) (before, after float64, err error) {
	d := len(r)
	if store == nil {
		store = func(v float32) float32 { return v }
	}
	switch {
	case axis == 0 && (len(shape) == 1 || len(shape) == 2) && shape[0] == d:
		n := len(x) / d
		u := components0(x, r, n)
		before = maxAbs(u)
		for i := range d {
			row := x[i*n : (i+1)*n]
			for k := range row {
				row[k] = store(float32(float64(row[k]) - r[i]*u[k]))
			}
		}
		return before, maxAbs(components0(x, r, n)), nil
	case axis == 1 && len(shape) == 2 && shape[1] == d:
		n := shape[0]
		p := components1(x, r, n)
		before = maxAbs(p)
		for t := range n {
			row := x[t*d : (t+1)*d]
			for j := range row {
				row[j] = store(float32(float64(row[j]) - p[t]*r[j]))
			}
		}
		return before, maxAbs(components1(x, r, n)), nil
	}
	return 0, 0, fmt.Errorf("tensor of shape %v has no d_model axis %d of length %d", shape, axis, d)
}

// components0 is rᵀx for x [d, n]: the component along r of each column.
func components0(x []float32, r []float64, n int) []float64 {
	u := make([]float64, n)
	for i, ri := range r {
		row := x[i*n : (i+1)*n]
		for k, v := range row {
			u[k] += ri * float64(v)
		}
	}
	return u
}

// components1 is x r for x [n, d]: the component along r of each row.
func components1(x []float32, r []float64, n int) []float64 {
	d := len(r)
	p := make([]float64, n)
	for t := range n {
		var s float64
		for j, v := range x[t*d : (t+1)*d] {
			s += float64(v) * r[j]
		}
		p[t] = s
	}
	return p
}

func maxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

// unit returns dir scaled to length 1, in float64; a zero or non-finite
// direction is an error.
func unit(dir []float32) ([]float64, error) {
	var n float64
	for _, v := range dir {
		n += float64(v) * float64(v)
	}
	n = math.Sqrt(n)
	if !(n > 0) || math.IsInf(n, 0) {
		return nil, fmt.Errorf("the direction has norm %v: it must be finite and non-zero", n)
	}
	r := make([]float64, len(dir))
	for i, v := range dir {
		r[i] = float64(v) / n
	}
	return r, nil
}
