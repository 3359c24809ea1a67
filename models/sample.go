package models

import (
	"math"
	"math/rand/v2"
	"sort"
)

// sampleToken picks the next token from one row's logits.
func sampleToken(logits []float32, o *Sampling, rng *rand.Rand) int32 {
	if o.Greedy() {
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i // first maximum wins, as torch.argmax
			}
		}
		return int32(best)
	}
	// Candidates sorted by logit, descending; top-k keeps the first k.
	idx := topIndices(logits, o.TopK)
	k := len(idx)
	// Softmax with temperature over the candidates.
	probs := make([]float64, k)
	top := float64(logits[idx[0]])
	var total float64
	for i, id := range idx {
		probs[i] = math.Exp((float64(logits[id]) - top) / o.Temperature)
		total += probs[i]
	}
	// Top-p: the smallest prefix whose mass reaches p (the top token always stays).
	if o.TopP > 0 && o.TopP < 1 {
		var cum float64
		for i := range probs {
			cum += probs[i] / total
			if cum >= o.TopP {
				probs, idx = probs[:i+1], idx[:i+1]
				break
			}
		}
		total = 0
		for _, p := range probs {
			total += p
		}
	}
	r := rng.Float64() * total
	for i, p := range probs {
		r -= p
		if r < 0 {
			return idx[i]
		}
	}
	return idx[len(idx)-1]
}

// topIndices returns the indices of the k largest logits, sorted descending
// (ties: lower index first); k <= 0 or k >= len means all of them.
func topIndices(logits []float32, k int) []int32 {
	less := func(a, b int32) bool { // a ranks below b
		if logits[a] != logits[b] {
			return logits[a] < logits[b]
		}
		return a > b
	}
	var idx []int32
	if k <= 0 || k >= len(logits) {
		idx = make([]int32, len(logits))
		for i := range idx {
			idx[i] = int32(i)
		}
	} else {
		// One pass with a min-heap of the k best: O(vocab·log k), not a full sort per token.
		h := make([]int32, 0, k)
		down := func(i int) {
			for {
				l, smallest := 2*i+1, i
				if l < len(h) && less(h[l], h[smallest]) {
					smallest = l
				}
				if r := l + 1; r < len(h) && less(h[r], h[smallest]) {
					smallest = r
				}
				if smallest == i {
					return
				}
				h[i], h[smallest] = h[smallest], h[i]
				i = smallest
			}
		}
		for i := range logits {
			id := int32(i)
			if len(h) < k {
				h = append(h, id)
				for j := len(h) - 1; j > 0 && less(h[j], h[(j-1)/2]); j = (j - 1) / 2 {
					h[j], h[(j-1)/2] = h[(j-1)/2], h[j]
				}
			} else if less(h[0], id) {
				h[0] = id
				down(0)
			}
		}
		idx = h
	}
	sort.Slice(idx, func(a, b int) bool { return less(idx[b], idx[a]) })
	return idx
}
