package models

import (
	"fmt"
	"slices"

	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// session holds the KV cache and intervention inputs of one batch.
type session struct {
	m          *Model
	exec       *graph.Exec
	iv         Interventions
	batch      int
	prefillLen int   // bucketed prompt length: slots [0, prefillLen) hold the left-padded prompts
	slots      int   // cache length T
	pads       []int // left padding per row
	prompts    [][]int32
	keyValid   *tensors.Tensor
	kv         []placed // K per layer, then V per layer
	steer      *tensors.Tensor
	ablate     *tensors.Tensor
	streams    placed // with Interventions.Streams: [n_layers, B, S, d_model] of the last step
	calls      int    // steps run
}

func (m *Model) newSession(prompts [][]int32, prefillLen int, opts GenerateOptions) (*session, error) {
	c := &m.Config
	iv := Interventions{Capture: opts.Capture, Steer: len(opts.Steer) > 0 || len(opts.SteerRows) > 0, Ablate: opts.Ablate != nil,
		Streams: opts.streams}
	if opts.shared() {
		iv.Capture, iv.Steer = true, true
	}
	exec, err := m.exec(iv)
	if err != nil {
		return nil, err
	}
	B := len(prompts)
	// +1: with Capture the last reply token is fed once more to read its residual stream.
	s := &session{m: m, exec: exec, iv: iv, batch: B, prefillLen: prefillLen, prompts: prompts,
		slots: bucket(prefillLen+opts.MaxNewTokens+1, cacheBucket), pads: make([]int, B)}
	valid := make([]float32, B*s.slots)
	for b, p := range prompts {
		s.pads[b] = prefillLen - len(p)
		for t := s.pads[b]; t < s.slots; t++ {
			valid[b*s.slots+t] = 1 // slots past the prompt are masked causally until written
		}
	}
	s.keyValid = tensors.FromFlatDataAndDimensions(valid, B, s.slots)
	if iv.Steer {
		steer := make([]float32, B*c.NumLayers*c.DModel)
		for b := range B {
			rowSteer := opts.Steer
			if opts.SteerRows != nil {
				rowSteer = opts.SteerRows[b]
			}
			for _, st := range rowSteer {
				if st.Layer < 0 || st.Layer >= c.NumLayers || len(st.Vector) != c.DModel {
					return nil, fmt.Errorf("steering at layer %d with a %d-vector: want a layer in [0, %d) and a %d-vector", st.Layer, len(st.Vector), c.NumLayers, c.DModel)
				}
				row := steer[(b*c.NumLayers+st.Layer)*c.DModel:]
				for d, v := range st.Vector {
					row[d] += st.Coeff * v
				}
			}
		}
		s.steer = tensors.FromFlatDataAndDimensions(steer, B, c.NumLayers, c.DModel)
	}
	if iv.Ablate {
		if len(opts.Ablate) != c.DModel {
			return nil, fmt.Errorf("ablation direction has %d values, want d_model=%d", len(opts.Ablate), c.DModel)
		}
		s.ablate = tensors.FromFlatDataAndDimensions(slices.Clone(opts.Ablate), c.DModel)
	}
	return s, nil
}

// step runs n new tokens per row ([B*n] ids) at cache slot offset and returns
// the last position's logits [B*vocab] and, with Capture, the sums
// [(n_layers+1)*B*d_model] over the positions where captureMask ([B*n]) is 1
// (nil: no sums wanted, none copied back).
func (s *session) step(tokens []int32, n, offset int, captureMask []float32) (logits, captured []float32, err error) {
	B := s.batch
	positions := make([]int32, B*n)
	for b := range B {
		for j := range n {
			positions[b*n+j] = int32(offset + j - s.pads[b])
		}
	}
	if s.kv == nil {
		if err := s.zeroCache(); err != nil {
			return nil, nil, err
		}
	}
	c := &s.m.Config
	in := map[string]any{
		inTokens:    tensors.FromFlatDataAndDimensions(tokens, B, n),
		inPositions: tensors.FromFlatDataAndDimensions(positions, B, n),
		inKeyValid:  s.keyValid,
		inOffset:    int32(offset),
	}
	for i, name := range cacheNames(c) {
		// Donated: the backend may update the cache in place instead of copying it every step.
		in[name] = donated(s.kv[i])
	}
	wantCapture := captureMask != nil // the shared program captures even when nobody asked
	if s.iv.Capture {
		if !wantCapture {
			captureMask = make([]float32, B*n)
		}
		in[inCapture] = tensors.FromFlatDataAndDimensions(captureMask, B, n)
	}
	if s.iv.Steer {
		in[inSteer] = s.steer
	}
	if s.iv.Ablate {
		in[inAblate] = s.ablate
	}
	named, err := inOrder(stepInputNames(c, s.iv), in)
	if err != nil {
		return nil, nil, err
	}
	if n > 1 { // a prompt pass: decoding steps are counted by GenerateIDs, which knows the idle rows
		s.m.count(func(st *Stats) {
			st.Prefills++
			st.PrefillPositions += B * n
			for _, p := range s.pads {
				st.PrefillPadding += p
			}
		})
	}
	outs, err := s.m.call(s.exec, true, named)
	if err != nil {
		return nil, nil, fmt.Errorf("model step: %w", err)
	}
	if s.calls++; s.calls <= 2 {
		// A session's first two steps (prefill, first decoding step) are
		// where new shapes get compiled: release the compiler's leftovers
		// before they pile up (see trimCHeap).
		trimCHeap()
	}
	out := map[string]placed{}
	for i, name := range stepOutputNames(c, s.iv) {
		out[name] = outs[i]
	}
	for i, name := range cacheNames(c) {
		s.kv[i] = out[name]
	}
	lt := out[outLogits].host()
	if logits, err = s.m.copyToHost(lt); err != nil {
		return nil, nil, err
	}
	_ = lt.FinalizeAll()
	if s.iv.Streams {
		s.streams = out[outStreams] // stays on the device for the suffix passes
	}
	if s.iv.Capture {
		if wantCapture {
			if captured, err = s.m.copyToHost(out[outCaptured][0]); err != nil {
				return nil, nil, err
			}
		}
		out[outCaptured].finalize()
	}
	return logits, captured, nil
}

// prefill runs the whole (left-padded) prompts of the session's distinct
// prompts; nothing is captured from them. Rows sharing a prompt (the n
// completions of one query) then copy its KV cache: the fan-out. It
// returns each row's logits for the first reply token, [B*vocab].
func (s *session) prefill(rowOf []int, prompts [][]int32, opts GenerateOptions) ([]float32, error) {
	U, P, V := len(s.prompts), s.prefillLen, s.m.Config.VocabSize
	tokens := make([]int32, U*P)
	for u, p := range s.prompts {
		copy(tokens[u*P+s.pads[u]:], p)
	}
	uniqLogits, _, err := s.step(tokens, P, 0, nil)
	if err != nil || U == len(rowOf) {
		return uniqLogits, err
	}
	if err := s.fanOut(rowOf, prompts, opts); err != nil {
		return nil, err
	}
	logits := make([]float32, len(rowOf)*V)
	for b, u := range rowOf {
		copy(logits[b*V:(b+1)*V], uniqLogits[u*V:(u+1)*V])
	}
	return logits, nil
}

// zeroCache creates the empty KV cache on the device (no host buffers).
func (s *session) zeroCache() error {
	c := &s.m.Config
	exec, err := s.m.program("zero_cache", func(g *graph.Graph, in []*graph.Node) []*graph.Node {
		keyValid := in[0] // [B, T]: only its shape is used
		shape := shapes.Make(c.actDType(), keyValid.Shape().Dim(0), c.NumKVHeads, keyValid.Shape().Dim(1), c.HeadDim)
		out := make([]*graph.Node, 2*c.NumLayers)
		for i := range out {
			out[i] = graph.Zeros(g, shape)
		}
		return out
	}, programIO{in: []string{inKeyValid}, out: cacheNames(c)})
	if err != nil {
		return err
	}
	s.kv, err = s.m.call(exec, false, []any{s.keyValid})
	return err
}

// fanOut turns a session over distinct prompts into one over all rows:
// row b gets a copy of the KV cache of distinct prompt rowOf[b].
func (s *session) fanOut(rowOf []int, prompts [][]int32, opts GenerateOptions) error {
	full, err := s.m.newSession(prompts, s.prefillLen, opts)
	if err != nil {
		return err
	}
	exec, err := s.m.program("fan_out", func(g *graph.Graph, in []*graph.Node) []*graph.Node {
		idx := graph.ExpandAxes(in[0], -1) // [B, 1]
		out := make([]*graph.Node, len(in)-1)
		for i, cache := range in[1:] {
			out[i] = graph.Gather(cache, idx) // [B, KV, T, hd]
		}
		return out
	}, programIO{in: append([]string{"rows"}, cacheNames(&s.m.Config)...), out: cacheNames(&s.m.Config)})
	if err != nil {
		return err
	}
	idx := make([]int32, len(rowOf))
	for b, u := range rowOf {
		idx[b] = int32(u)
	}
	args := []any{tensors.FromFlatDataAndDimensions(idx, len(idx))}
	for _, t := range s.kv {
		args = append(args, t)
	}
	if full.kv, err = s.m.call(exec, false, args); err != nil {
		return fmt.Errorf("fan out the KV cache: %w", err)
	}
	s.close()
	*s = *full
	return nil
}

// compact moves the session to a batch of `size` rows: the slots that still
// need feeding (mask 1; it does nothing if they do not fit), padded with
// finished rows (fed but ignored). Rows that have stopped no longer cost a
// step: with sampling, one long reply would otherwise keep a whole batch
// running. It returns the new slot order, tokens and mask.
func (s *session) compact(rows []int, next []int32, mask []float32, prompts [][]int32, opts GenerateOptions, size int) ([]int, []int32, []float32, error) {
	var keep, idle []int // slots
	for r := range rows {
		if mask[r] == 1 {
			keep = append(keep, r)
		} else {
			idle = append(idle, r)
		}
	}
	if size >= len(rows) || len(keep) > size {
		return rows, next, mask, nil
	}
	keep = append(keep, idle[:size-len(keep)]...)
	newRows, newNext, newMask := make([]int, size), make([]int32, size), make([]float32, size)
	newPrompts := make([][]int32, size)
	var steerRows [][]Steering
	for i, r := range keep {
		newRows[i], newNext[i], newMask[i] = rows[r], next[r], mask[r]
		newPrompts[i] = prompts[rows[r]]
		if opts.SteerRows != nil {
			steerRows = append(steerRows, opts.SteerRows[rows[r]])
		}
	}
	opts.SteerRows = steerRows
	if err := s.fanOut(keep, newPrompts, opts); err != nil {
		return nil, nil, nil, err
	}
	return newRows, newNext, newMask, nil
}

// close frees the session's device memory, and hands what the session
// freed back to the system so it does not pile up across batches.
func (s *session) close() {
	for _, t := range s.kv {
		t.finalize()
	}
	s.kv = nil
	if s.streams != nil {
		s.streams.finalize()
		s.streams = nil
	}
	releaseMemory()
}
