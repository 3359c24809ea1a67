package refusalkit

import (
	"fmt"
	"strconv"
	"strings"
)

// Shard is one part of an extraction split across machines: of each mode's
// batches (GenerateConfig.BatchSize rows, in the order a whole run makes
// them), the ones whose index b has b mod Count == Index. A shard's batches
// are the whole run's batches, so each row is generated with the same batch
// neighbours, padding and seed as in the whole run, and its response and
// activations are the same bytes; the shards of a run, merged
// (runs.Merge), make the run's files.
type Shard struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// ParseShard reads "i/M": shard i (0-based) of M.
func ParseShard(s string) (Shard, error) {
	i, m, ok := strings.Cut(s, "/")
	sh := Shard{}
	var err1, err2 error
	sh.Index, err1 = strconv.Atoi(i)
	sh.Count, err2 = strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || sh.Count < 1 || sh.Index < 0 || sh.Index >= sh.Count {
		return Shard{}, fmt.Errorf("shard %q: give i/M with 0 <= i < M, e.g. 0/4 for the first of four", s)
	}
	return sh, nil
}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// Has reports whether batch b (0-based, within a mode) is the shard's.
func (s Shard) Has(b int) bool { return b%s.Count == s.Index }

// Sums are one side's activations summed over its kept responses, in
// float64, with their count: a difference of means is exact from the sums
// and counts of its parts.
type Sums struct {
	Sum [][]float64 `json:"-"` // [n_layers+1][d_model]; nil when N is 0
	N   int         `json:"n"`
}

// SumActivations adds up the Means of rs (responses without activations
// are left out, and not counted).
func SumActivations(rs []Response) Sums {
	var s Sums
	for _, r := range rs {
		if r.Means == nil {
			continue
		}
		if s.Sum == nil {
			s.Sum = make([][]float64, len(r.Means))
			for l := range s.Sum {
				s.Sum[l] = make([]float64, len(r.Means[l]))
			}
		}
		for l := range r.Means {
			for d, x := range r.Means[l] {
				s.Sum[l][d] += x
			}
		}
		s.N++
	}
	return s
}

// Add adds o to s.
func (s *Sums) Add(o Sums) error {
	if o.N == 0 {
		return nil
	}
	if s.Sum == nil {
		s.Sum = make([][]float64, len(o.Sum))
		for l := range o.Sum {
			s.Sum[l] = make([]float64, len(o.Sum[l]))
		}
	}
	if len(o.Sum) != len(s.Sum) || len(o.Sum[0]) != len(s.Sum[0]) {
		return fmt.Errorf("activation sums of shape %dx%d cannot be added to %dx%d", len(o.Sum), len(o.Sum[0]), len(s.Sum), len(s.Sum[0]))
	}
	for l := range o.Sum {
		for d, x := range o.Sum[l] {
			s.Sum[l][d] += x
		}
	}
	s.N += o.N
	return nil
}

// Mean is Sum / N.
func (s Sums) Mean() [][]float64 {
	out := make([][]float64, len(s.Sum))
	for l := range s.Sum {
		out[l] = make([]float64, len(s.Sum[l]))
		for d, x := range s.Sum[l] {
			out[l][d] = x / float64(s.N)
		}
	}
	return out
}
