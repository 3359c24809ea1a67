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

// Reference is a batch of sequences run once through the clean model,
// teacher-forced, with its next-token distributions kept on the device, so
// that several interventions (a sweep's coefficients, every layer) are
// compared with it without running the clean pass again. Close releases
// the distributions.
type Reference struct {
	m     *Model
	seqs  [][]int32
	from  []int
	s     *session
	in    map[string]any // the clean pass's inputs, reused by every comparison
	clean placed         // [B, P, vocab] float32 log-probabilities, on the devices; nil once closed
	// CleanLogProb holds each sequence's scored tokens' log-probabilities
	// under the clean model, as Comparison.CleanLogProb.
	CleanLogProb [][]float64
}

// LogProbs returns, per sequence, the clean model's log-probability of each
// scored token (as NewReference scores them), from one forward pass. It runs
// NewReference's program and drops the distributions: a program of its own
// would compile once more per shape, which costs more than writing them.
func (m *Model) LogProbs(seqs [][]int32, from []int) ([][]float64, error) {
	r, err := m.NewReference(seqs, from)
	if err != nil {
		return nil, err
	}
	r.Close()
	return r.CleanLogProb, nil
}

// Compare runs each sequence through the model clean and with opts'
// interventions (Steer, SteerRows, Ablate), teacher-forced: both read the
// same tokens; see NewReference for which tokens are scored. The
// distributions stay on the device: only the [batch, positions] statistics
// come back, whatever the vocabulary. The log-softmax and the KL are
// computed in float32, over the full vocabulary, from the same logits
// Forward returns.
func (m *Model) Compare(seqs [][]int32, from []int, opts ForwardOptions) (*Comparison, error) {
	if len(seqs) == 0 && len(from) == 0 {
		return &Comparison{}, nil
	}
	r, err := m.NewReference(seqs, from)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Compare(opts)
}

// NewReference runs seqs through the clean model, teacher-forced, scoring
// tokens from[i] to the end of sequence i (from[i] ≥ 1: the first token has
// nothing before it to predict it from), e.g. a reply after its prompt.
func (m *Model) NewReference(seqs [][]int32, from []int) (*Reference, error) {
	if len(from) != len(seqs) {
		return nil, fmt.Errorf("compare: %d start positions for %d sequences", len(from), len(seqs))
	}
	if len(seqs) == 0 {
		return nil, fmt.Errorf("compare: no sequences")
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
	s, err := m.newSession(seqs, bucket(longest, promptBucket), GenerateOptions{})
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
	r := &Reference{m: m, seqs: seqs, from: from, s: s, in: map[string]any{
		inTokens:    tensors.FromFlatDataAndDimensions(tokens, B, P),
		inPositions: tensors.FromFlatDataAndDimensions(positions, B, P),
		inKeyValid:  s.keyValid,
		inOffset:    int32(0),
		inTargets:   tensors.FromFlatDataAndDimensions(targets, B, P),
	}}
	outs, err := m.runCompare("reference", referenceInputNames, referenceOutputNames, m.referenceGraph(), r.in)
	if err != nil {
		return nil, err
	}
	r.CleanLogProb = r.perToken(outs[outCleanLogP].host())
	r.clean = outs[outCleanDist]
	return r, nil
}

// Compare measures opts' interventions against the reference's clean pass.
func (r *Reference) Compare(opts ForwardOptions) (*Comparison, error) {
	if r.clean == nil {
		return nil, fmt.Errorf("compare: the reference is closed")
	}
	m := r.m
	s, err := m.newSession(r.seqs, r.s.prefillLen, GenerateOptions{Steer: opts.Steer, SteerRows: opts.SteerRows, Ablate: opts.Ablate})
	if err != nil {
		return nil, err
	}
	iv := Interventions{Steer: s.iv.Steer, Ablate: s.iv.Ablate}
	names := append(append([]string{}, referenceInputNames...), inCleanDist)
	if iv.Steer {
		names = append(names, inSteer)
	}
	if iv.Ablate {
		names = append(names, inAblate)
	}
	in := map[string]any{inCleanDist: r.clean}
	for k, v := range r.in {
		in[k] = v
	}
	if iv.Steer {
		in[inSteer] = s.steer
	}
	if iv.Ablate {
		in[inAblate] = s.ablate
	}
	outs, err := m.runCompare(fmt.Sprintf("compare %+v", iv), names, compareOutputNames, m.compareGraph(iv, names), in)
	if err != nil {
		return nil, err
	}
	return &Comparison{KL: r.perTokenKL(outs[outKL].host()), CleanLogProb: r.CleanLogProb, LogProb: r.perToken(outs[outSteerLogP].host())}, nil
}

// Close releases the clean distributions on the device.
func (r *Reference) Close() {
	if r.clean != nil {
		r.clean.finalize()
		r.clean = nil
	}
}

// runCompare compiles (once per name and shapes) and runs a teacher-forced
// program over the weights and the named inputs, and returns its outputs by
// name. Outputs named [B, P] statistics are read back to the host;
// outCleanDist stays on the device.
func (m *Model) runCompare(program string, inNames, outNames []string, fn func(g *Graph, in []*Node) []*Node, in map[string]any) (map[string]placed, error) {
	exec, err := m.program(program, fn, programIO{weights: true, in: inNames, out: outNames})
	if err != nil {
		return nil, err
	}
	named, err := inOrder(inNames, in)
	if err != nil {
		return nil, err
	}
	outs, err := m.call(exec, true, named)
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	trimCHeap()
	res := map[string]placed{}
	for i, name := range outNames {
		res[name] = outs[i]
	}
	return res, nil
}

// perToken reads a [B, P] statistic back and keeps, per sequence, the
// positions that predict its scored tokens.
func (r *Reference) perToken(t *tensors.Tensor) [][]float64 {
	flat, err := tensors.CopyFlatData[float32](t)
	_ = t.FinalizeAll()
	if err != nil {
		panic(err) // a [B, P] float32 output the program declares
	}
	P := r.s.prefillLen
	out := make([][]float64, len(r.seqs))
	for b, seq := range r.seqs {
		for t := r.from[b]; t < len(seq); t++ {
			out[b] = append(out[b], float64(flat[b*P+r.s.pads[b]+t-1])) // the position that predicts token t
		}
	}
	return out
}

// perTokenKL is perToken for KLs: a KL below zero is float32 rounding of an exact 0.
func (r *Reference) perTokenKL(t *tensors.Tensor) [][]float64 {
	out := r.perToken(t)
	for _, row := range out {
		for i, x := range row {
			row[i] = math.Max(0, x)
		}
	}
	return out
}

// referenceInputNames lists the teacher-forced programs' inputs after the weights.
var referenceInputNames = []string{inTokens, inPositions, inKeyValid, inOffset, inTargets}

// referenceOutputNames lists the reference program's outputs, in order.
var referenceOutputNames = []string{outCleanLogP, outCleanDist}

// compareOutputNames lists the comparison program's outputs, in order.
var compareOutputNames = []string{outKL, outSteerLogP}

// logProbsGraph is the teacher-forced forward pass from an empty KV cache
// with iv's interventions: [B, S, vocab] float32 log-probabilities.
func logProbsGraph(c *Config, w *Params[*Node], in map[string]*Node, iv Interventions) *Node {
	g := in[inTokens].Graph()
	keyValid := in[inKeyValid]
	cacheShape := shapes.Make(c.actDType(), keyValid.Shape().Dim(0), c.NumKVHeads, keyValid.Shape().Dim(1), c.HeadDim)
	x := newStepInputs(c, in, iv)
	for i := range c.NumLayers {
		x.kCache[i], x.vCache[i] = Zeros(g, cacheShape), Zeros(g, cacheShape)
	}
	h := forward(c, w, x, 0, nil)[outHidden]              // [B, S, d_model]
	return LogSoftmax(lmHead(c, w, h, "bsd,vd->bsv"), -1) // [B, S, vocab], float32
}

// referenceGraph runs the clean teacher-forced pass and returns the
// targets' log-probabilities and the distributions.
func (m *Model) referenceGraph() func(g *Graph, in []*Node) []*Node {
	c := m.Config
	nWeights := len(m.weightList)
	return func(g *Graph, in []*Node) []*Node {
		w := fromFlat(&c, in[:nWeights])
		named := bindNames(referenceInputNames, in[nWeights:])
		lc := logProbsGraph(&c, w, named, Interventions{})
		outs, err := inOrder(referenceOutputNames, map[string]*Node{outCleanLogP: pick(lc, named[inTargets]), outCleanDist: lc})
		if err != nil {
			panic(err)
		}
		return outs
	}
}

// compareGraph runs the teacher-forced pass with iv's interventions and
// returns per position the KL from the reference's clean distributions
// (inCleanDist) and the targets' log-probabilities.
func (m *Model) compareGraph(iv Interventions, names []string) func(g *Graph, in []*Node) []*Node {
	c := m.Config
	nWeights := len(m.weightList)
	return func(g *Graph, in []*Node) []*Node {
		w := fromFlat(&c, in[:nWeights])
		named := bindNames(names, in[nWeights:])
		lc, ls := named[inCleanDist], logProbsGraph(&c, w, named, iv)
		outs, err := inOrder(compareOutputNames, map[string]*Node{
			outKL:        ReduceSum(Mul(Exp(lc), Sub(lc, ls)), -1), // [B, S]
			outSteerLogP: pick(ls, named[inTargets]),
		})
		if err != nil {
			panic(err)
		}
		return outs
	}
}

// pick returns logp[b, s, targets[b, s]]: [B, S] from [B, S, V] and [B, S].
func pick(logp, targets *Node) *Node {
	B, S, V := logp.Shape().Dim(0), logp.Shape().Dim(1), logp.Shape().Dim(2)
	g := logp.Graph()
	rows := MulScalar(Iota(g, shapes.Make(dtypes.Int32, B*S), 0), V)
	idx := Add(rows, Reshape(targets, B*S))
	return Reshape(Gather(Reshape(logp, B*S*V), ExpandAxes(idx, -1)), B, S)
}
