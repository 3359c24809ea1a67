package models

import "fmt"

// ForwardOptions control a plain forward pass (no generation).
type ForwardOptions struct {
	// CaptureMask[i][j] marks the positions of sequence i whose residual
	// stream is averaged (e.g. the reply tokens after the prompt); nil: no capture.
	CaptureMask [][]bool
	Steer       []Steering
	SteerRows   [][]Steering
	Ablate      []float32
}

// FirstIntervenedLayer is the first block whose input opts change: the
// lowest layer Steer or SteerRows steer at, 0 with Ablate (it acts at every
// layer), -1 when opts change nothing. The blocks before it see the clean
// stream, so a pass may resume there from a kept one (ReferenceOptions).
func (o ForwardOptions) FirstIntervenedLayer() int {
	if o.Ablate != nil {
		return 0
	}
	first := -1
	for _, row := range append([][]Steering{o.Steer}, o.SteerRows...) {
		for _, st := range row {
			if first < 0 || st.Layer < first {
				first = st.Layer
			}
		}
	}
	return first
}

// ForwardResult holds one entry per sequence.
type ForwardResult struct {
	// Logits of the last position, [vocab] per sequence: for a chat prompt,
	// the distribution of the reply's first token.
	Logits [][]float32
	// Means[i] is [n_layers+1][d_model]: the mean over CaptureMask[i]'s
	// positions; nil when the mask selects nothing.
	Means [][][]float64
}

// Forward runs the model once over whole sequences, left-padded into one batch.
func (m *Model) Forward(seqs [][]int32, opts ForwardOptions) (*ForwardResult, error) {
	if len(seqs) == 0 {
		return &ForwardResult{}, nil
	}
	capture := opts.CaptureMask != nil
	longest := 0
	for i, s := range seqs {
		if len(s) == 0 {
			return nil, fmt.Errorf("sequence %d is empty", i)
		}
		if capture && len(opts.CaptureMask[i]) != len(s) {
			return nil, fmt.Errorf("capture mask %d has %d positions for a sequence of %d tokens", i, len(opts.CaptureMask[i]), len(s))
		}
		longest = max(longest, len(s))
	}
	if longest > m.Config.ContextLength {
		return nil, fmt.Errorf("sequence of %d tokens exceeds the model's context of %d tokens", longest, m.Config.ContextLength)
	}
	gopts := GenerateOptions{MaxNewTokens: 0, Capture: capture, Steer: opts.Steer, SteerRows: opts.SteerRows, Ablate: opts.Ablate}
	s, err := m.newSession(seqs, bucket(longest, promptBucket), gopts)
	if err != nil {
		return nil, err
	}
	defer s.close()
	B, P := len(seqs), s.prefillLen
	tokens := make([]int32, B*P)
	var mask []float32
	counts := make([]int, B)
	if capture {
		mask = make([]float32, B*P)
	}
	for b, seq := range seqs {
		copy(tokens[b*P+s.pads[b]:], seq)
		if capture {
			for j, on := range opts.CaptureMask[b] {
				if on {
					mask[b*P+s.pads[b]+j] = 1
					counts[b]++
				}
			}
		}
	}
	logits, captured, err := s.step(tokens, P, 0, mask)
	if err != nil {
		return nil, err
	}
	V := m.Config.VocabSize
	res := &ForwardResult{Logits: make([][]float32, B)}
	for b := range B {
		res.Logits[b] = logits[b*V : (b+1)*V]
	}
	if capture {
		L1, D := m.Config.NumLayers+1, m.Config.DModel
		res.Means = make([][][]float64, B)
		for b := range B {
			if counts[b] == 0 {
				continue
			}
			sum := make([]float64, L1*D)
			addRow(sum, captured, b, B, L1, D)
			res.Means[b] = splitMeans(sum, counts[b], L1, D)
		}
	}
	return res, nil
}
