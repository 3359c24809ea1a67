package models

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph code reads better unqualified, as in GoMLX's own examples.
	"github.com/gomlx/gomlx/core/tensors"
)

// Comparison holds, for each sequence, one entry per scored token: the
// token's position predicts it from the tokens before it.
type Comparison struct {
	// KL is KL(clean ‖ intervened) of the next-token distributions at that
	// position, in nats: how much the intervention moves the prediction.
	KL [][]float64
	// CleanLogProb and LogProb are the token's log-probability without and
	// with the interventions.
	CleanLogProb, LogProb [][]float64
}

// Compare runs each sequence through the model twice in one program, clean
// and with opts' interventions (Steer, SteerRows, Ablate), teacher-forced:
// both read the same tokens. Tokens from[i] to the end of sequence i are
// scored (from[i] ≥ 1: the first token has nothing before it to predict it
// from), e.g. a reply after its prompt. The distributions stay on the
// device: only the [batch, positions] statistics come back, whatever the
// vocabulary. The log-softmax and the KL are computed in float32, over the
// full vocabulary, from the same logits Forward returns.
func (m *Model) Compare(seqs [][]int32, from []int, opts ForwardOptions) (*Comparison, error) {
	if len(from) != len(seqs) {
		return nil, fmt.Errorf("compare: %d start positions for %d sequences", len(from), len(seqs))
	}
	if len(seqs) == 0 {
		return &Comparison{}, nil
	}
	longest := 0
	for i, s := range seqs {
		if from[i] < 1 || from[i] >= len(s) {
			return nil, fmt.Errorf("compare: sequence %d scores tokens from %d of %d: want 1 ≤ from < length", i, from[i], len(s))
		}
		longest = max(longest, len(s))
	}
	if longest > m.Config.ContextLength {
		return nil, fmt.Errorf("sequence of %d tokens exceeds the model's context of %d tokens", longest, m.Config.ContextLength)
	}
	s, err := m.newSession(seqs, bucket(longest, promptBucket), GenerateOptions{Steer: opts.Steer, SteerRows: opts.SteerRows, Ablate: opts.Ablate})
	if err != nil {
		return nil, err
	}
	iv := Interventions{Steer: s.iv.Steer, Ablate: s.iv.Ablate}
	names := compareInputNames(iv)
	exec, err := m.program(fmt.Sprintf("compare %+v", iv), m.compareGraph(iv, names))
	if err != nil {
		return nil, err
	}
	B, P := len(seqs), s.prefillLen
	tokens, targets, positions := make([]int32, B*P), make([]int32, B*P), make([]int32, B*P)
	for b, seq := range seqs {
		copy(tokens[b*P+s.pads[b]:], seq)
		copy(targets[b*P+s.pads[b]:], seq[1:]) // position p predicts token p+1
		for j := range P {
			positions[b*P+j] = int32(j - s.pads[b])
		}
	}
	in := map[string]any{
		inTokens:    tensors.FromFlatDataAndDimensions(tokens, B, P),
		inPositions: tensors.FromFlatDataAndDimensions(positions, B, P),
		inKeyValid:  s.keyValid,
		inOffset:    int32(0),
		inTargets:   tensors.FromFlatDataAndDimensions(targets, B, P),
	}
	if iv.Steer {
		in[inSteer] = s.steer
	}
	if iv.Ablate {
		in[inAblate] = s.ablate
	}
	named, err := inOrder(names, in)
	if err != nil {
		return nil, err
	}
	args := make([]any, 0, len(m.weightList)+len(named))
	for _, w := range m.weightList {
		args = append(args, w)
	}
	outs, err := exec.Call(append(args, named...)...)
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	trimCHeap()
	flat := map[string][]float32{}
	for i, name := range compareOutputNames {
		if flat[name], err = tensors.CopyFlatData[float32](outs[i]); err != nil {
			return nil, err
		}
		_ = outs[i].FinalizeAll()
	}
	res := &Comparison{KL: make([][]float64, B), CleanLogProb: make([][]float64, B), LogProb: make([][]float64, B)}
	for b, seq := range seqs {
		for t := from[b]; t < len(seq); t++ {
			p := b*P + s.pads[b] + t - 1 // the position that predicts token t
			// A KL below zero is float32 rounding of an exact 0.
			res.KL[b] = append(res.KL[b], math.Max(0, float64(flat[outKL][p])))
			res.CleanLogProb[b] = append(res.CleanLogProb[b], float64(flat[outCleanLogP][p]))
			res.LogProb[b] = append(res.LogProb[b], float64(flat[outSteerLogP][p]))
		}
	}
	return res, nil
}

// compareInputNames lists the comparison program's inputs after the weights.
func compareInputNames(iv Interventions) []string {
	names := []string{inTokens, inPositions, inKeyValid, inOffset, inTargets}
	if iv.Steer {
		names = append(names, inSteer)
	}
	if iv.Ablate {
		names = append(names, inAblate)
	}
	return names
}

// compareGraph runs the forward pass twice, without and with iv's
// interventions, from an empty KV cache, and returns per position the KL
// between the two next-token distributions and the targets' log-probabilities
// (outKL, outCleanLogP, outSteerLogP).
func (m *Model) compareGraph(iv Interventions, names []string) func(g *Graph, in []*Node) []*Node {
	c := m.Config
	nWeights := len(m.weightList)
	return func(g *Graph, in []*Node) []*Node {
		w := fromFlat(&c, in[:nWeights])
		named := bindNames(names, in[nWeights:])
		clean := map[string]*Node{}
		for k, v := range named {
			if k != inSteer && k != inAblate {
				clean[k] = v
			}
		}
		keyValid := named[inKeyValid]
		cacheShape := shapes.Make(c.actDType(), keyValid.Shape().Dim(0), c.NumKVHeads, keyValid.Shape().Dim(1), c.HeadDim)
		logProbs := func(in map[string]*Node, iv Interventions) *Node {
			x := newStepInputs(&c, in, iv)
			for i := range c.NumLayers {
				x.kCache[i], x.vCache[i] = Zeros(g, cacheShape), Zeros(g, cacheShape)
			}
			h := forward(&c, w, x, 0, nil)[outHidden]              // [B, S, d_model]
			return LogSoftmax(lmHead(&c, w, h, "bsd,vd->bsv"), -1) // [B, S, vocab], float32
		}
		lc, ls := logProbs(clean, Interventions{}), logProbs(named, iv)
		outs, err := inOrder(compareOutputNames, map[string]*Node{
			outKL:        ReduceSum(Mul(Exp(lc), Sub(lc, ls)), -1), // [B, S]
			outCleanLogP: pick(lc, named[inTargets]),
			outSteerLogP: pick(ls, named[inTargets]),
		})
		if err != nil {
			panic(err)
		}
		return outs
	}
}

// compareOutputNames lists the comparison program's outputs, in order.
var compareOutputNames = []string{outKL, outCleanLogP, outSteerLogP}

// pick returns logp[b, s, targets[b, s]]: [B, S] from [B, S, V] and [B, S].
func pick(logp, targets *Node) *Node {
	B, S, V := logp.Shape().Dim(0), logp.Shape().Dim(1), logp.Shape().Dim(2)
	g := logp.Graph()
	rows := MulScalar(Iota(g, shapes.Make(dtypes.Int32, B*S), 0), V)
	idx := Add(rows, Reshape(targets, B*S))
	return Reshape(Gather(Reshape(logp, B*S*V), ExpandAxes(idx, -1)), B, S)
}
