package models

import (
	"fmt"
	"maps"
	"math"
	"slices"

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
	m      *Model
	seqs   [][]int32
	from   []int
	s      *session
	window int            // R: the scored window, the R positions before the last
	in     map[string]any // the clean pass's inputs, reused by every comparison
	clean  placed         // [B, R, vocab] float32 log-probabilities, on the devices; nil once closed
	resume map[int]placed // layer → the clean stream entering its block, [B, P, d_model] (ReferenceOptions.Resume)
	// CleanLogProb holds each sequence's scored tokens' log-probabilities
	// under the clean model, as Comparison.CleanLogProb.
	CleanLogProb [][]float64
}

// ReferenceOptions are what a Reference keeps beyond the distributions.
type ReferenceOptions struct {
	// Resume lists layers whose clean stream entering the block the
	// reference keeps on the device. A comparison that only steers, at
	// one of these layers or later, then runs the blocks from the latest
	// such layer on, from the kept stream, instead of every block: the
	// blocks before the first steered layer compute the clean stream
	// again (steering adds zero there). Each layer resumed at compiles a
	// program of its own.
	Resume []int
}

// LogProbs returns, per sequence, the clean model's log-probability of each
// scored token (as NewReference scores them), from one forward pass. It runs
// NewReference's program and drops the distributions: a program of its own
// would compile once more per shape, which costs more than writing them.
func (m *Model) LogProbs(seqs [][]int32, from []int) ([][]float64, error) {
	r, err := m.NewReference(seqs, from, ReferenceOptions{})
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
	r, err := m.NewReference(seqs, from, ReferenceOptions{})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Compare(opts)
}

// NewReference runs seqs through the clean model, teacher-forced, scoring
// tokens from[i] to the end of sequence i (from[i] ≥ 1: the first token has
// nothing before it to predict it from), e.g. a reply after its prompt.
//
// Only the positions that predict a scored token go through the LM head:
// with left padding they are a window of R positions before each row's
// last one, R the bucketed longest scored run, so a long prompt costs no
// vocabulary-sized work.
func (m *Model) NewReference(seqs [][]int32, from []int, opts ReferenceOptions) (*Reference, error) {
	if len(from) != len(seqs) {
		return nil, fmt.Errorf("compare: %d start positions for %d sequences", len(from), len(seqs))
	}
	if len(seqs) == 0 {
		return nil, fmt.Errorf("compare: no sequences")
	}
	longest, scored := 0, 0
	for i, s := range seqs {
		if from[i] < 1 || from[i] >= len(s) {
			return nil, fmt.Errorf("compare: sequence %d scores tokens from %d of %d: want 1 ≤ from < length", i, from[i], len(s))
		}
		longest, scored = max(longest, len(s)), max(scored, len(s)-from[i])
	}
	if longest > m.Config.ContextLength {
		return nil, fmt.Errorf("sequence of %d tokens exceeds the model's context of %d tokens", longest, m.Config.ContextLength)
	}
	resume := map[int]bool{}
	for _, l := range opts.Resume {
		if l < 0 || l >= m.Config.NumLayers {
			return nil, fmt.Errorf("compare: resume at layer %d: want a layer in [0, %d)", l, m.Config.NumLayers)
		}
		if l > 0 { // block 0 reads the embeddings: resuming there is the full pass
			resume[l] = true
		}
	}
	kept := slices.Sorted(maps.Keys(resume))
	s, err := m.newSession(seqs, bucket(longest, promptBucket), GenerateOptions{})
	if err != nil {
		return nil, err
	}
	B, P := len(seqs), s.prefillLen
	R := min(bucket(scored, promptBucket), P-1)
	tokens, targets, positions := make([]int32, B*P), make([]int32, B*R), make([]int32, B*P)
	for b, seq := range seqs {
		copy(tokens[b*P+s.pads[b]:], seq)
		for j := range P {
			positions[b*P+j] = int32(j - s.pads[b])
		}
		// Window position j is sequence position P-1-R+j, which predicts the token after it.
		copy(targets[b*R:(b+1)*R], tokens[b*P+P-R:(b+1)*P])
	}
	r := &Reference{m: m, seqs: seqs, from: from, s: s, window: R, in: map[string]any{
		inTokens:    tensors.FromFlatDataAndDimensions(tokens, B, P),
		inPositions: tensors.FromFlatDataAndDimensions(positions, B, P),
		inKeyValid:  s.keyValid,
		inOffset:    int32(0),
		inTargets:   tensors.FromFlatDataAndDimensions(targets, B, R),
	}}
	outNames := append(append([]string{}, referenceOutputNames...), resumeNames(kept)...)
	m.countPass(s.pads, P, 1)
	outs, err := m.runCompare(fmt.Sprintf("reference resume %v", kept), referenceInputNames, outNames, m.referenceGraph(kept, outNames), r.in)
	if err != nil {
		return nil, err
	}
	r.CleanLogProb = r.perToken(outs[outCleanLogP].host())
	r.clean = outs[outCleanDist]
	r.resume = map[int]placed{}
	for _, l := range kept {
		r.resume[l] = outs[resumeName(l)]
	}
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
	in := map[string]any{inCleanDist: r.clean}
	for k, v := range r.in {
		in[k] = v
	}
	if iv.Steer {
		names = append(names, inSteer)
		in[inSteer] = s.steer
	}
	if iv.Ablate {
		names = append(names, inAblate)
		in[inAblate] = s.ablate
	}
	program, start := fmt.Sprintf("compare %+v", iv), r.resumeAt(opts)
	if start > 0 {
		names = append(names, inResume)
		in[inResume] = r.resume[start]
		program = fmt.Sprintf("compare_suffix_%d", start)
	}
	m.countPass(r.s.pads, r.s.prefillLen, 1)
	outs, err := m.runCompare(program, names, compareOutputNames, m.compareGraph(iv, names, start), in)
	if err != nil {
		return nil, err
	}
	return &Comparison{KL: r.perTokenKL(outs[outKL].host()), CleanLogProb: r.CleanLogProb, LogProb: r.perToken(outs[outSteerLogP].host())}, nil
}

// resumeAt is the block a comparison of opts starts at: the latest kept
// layer at or before opts' first intervened one; 0 (every block) when none is.
func (r *Reference) resumeAt(opts ForwardOptions) int {
	first, at := opts.FirstIntervenedLayer(), 0
	for l := range r.resume {
		if l <= first {
			at = max(at, l)
		}
	}
	return at
}

// Close releases what the reference keeps on the device.
func (r *Reference) Close() {
	if r.clean != nil {
		r.clean.finalize()
		r.clean = nil
	}
	for l, t := range r.resume {
		t.finalize()
		delete(r.resume, l)
	}
}

// runCompare compiles (once per name and shapes) and runs a teacher-forced
// program over the weights and the named inputs, and returns its outputs by
// name. Outputs named [B, R] statistics are read back to the host;
// outCleanDist and the resume streams stay on the device.
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

// perToken reads a [B, R] statistic back and keeps, per sequence, the
// positions that predict its scored tokens.
func (r *Reference) perToken(t *tensors.Tensor) [][]float64 {
	flat, err := r.m.copyToHost(t)
	_ = t.FinalizeAll()
	if err != nil {
		panic(err) // a [B, R] float32 output the program declares
	}
	P, R := r.s.prefillLen, r.window
	out := make([][]float64, len(r.seqs))
	for b, seq := range r.seqs {
		for t := r.from[b]; t < len(seq); t++ {
			pos := r.s.pads[b] + t - 1                              // the position that predicts token t
			out[b] = append(out[b], float64(flat[b*R+pos-(P-1-R)])) // its place in the window
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

// referenceOutputNames lists the reference program's outputs, in order,
// before the resume streams.
var referenceOutputNames = []string{outCleanLogP, outCleanDist}

// compareOutputNames lists the comparison program's outputs, in order.
var compareOutputNames = []string{outKL, outSteerLogP}

// resumeNames are the reference program's outputs of the kept streams.
func resumeNames(layers []int) []string {
	names := make([]string, len(layers))
	for i, l := range layers {
		names[i] = resumeName(l)
	}
	return names
}

// logProbsGraph is the teacher-forced forward pass from an empty KV cache
// with iv's interventions over blocks start..n_layers-1: from the tokens
// when start is 0, else from h, the stream entering block start. It returns
// the log-probabilities of the window, the R positions before the last (R
// is the targets' length; the last position predicts past the sequence),
// [B, R, vocab] float32, and with iv.Streams the stream entering each block
// from start on.
func logProbsGraph(c *Config, w *Params[*Node], in map[string]*Node, iv Interventions, start int, h *Node) (logp *Node, streams []*Node) {
	g := in[inTokens].Graph()
	keyValid := in[inKeyValid]
	cacheShape := shapes.Make(c.actDType(), keyValid.Shape().Dim(0), c.NumKVHeads, keyValid.Shape().Dim(1), c.HeadDim)
	x := newStepInputs(c, in, iv)
	for i := start; i < c.NumLayers; i++ {
		x.kCache[i], x.vCache[i] = Zeros(g, cacheShape), Zeros(g, cacheShape)
	}
	hidden := forward(c, w, x, start, h)[outHidden] // [B, S, d_model]
	S, R := hidden.Shape().Dim(1), in[inTargets].Shape().Dim(1)
	window := Slice(hidden, AxisRange(), AxisRange(S-1-R, S-1))           // [B, R, d_model]
	return LogSoftmax(lmHead(c, w, window, "bsd,vd->bsv"), -1), x.streams // [B, R, vocab], float32
}

// referenceGraph runs the clean teacher-forced pass and returns the
// targets' log-probabilities, the distributions and the streams entering
// the resume layers' blocks, by outNames.
func (m *Model) referenceGraph(resume []int, outNames []string) func(g *Graph, in []*Node) []*Node {
	c := m.Config
	nWeights := len(m.weightList)
	return func(g *Graph, in []*Node) []*Node {
		w := fromFlat(&c, in[:nWeights])
		named := bindNames(referenceInputNames, in[nWeights:])
		lc, streams := logProbsGraph(&c, w, named, Interventions{Streams: len(resume) > 0}, 0, nil)
		values := map[string]*Node{outCleanLogP: pick(lc, named[inTargets]), outCleanDist: lc}
		for _, l := range resume {
			values[resumeName(l)] = streams[l]
		}
		outs, err := inOrder(outNames, values)
		if err != nil {
			panic(err)
		}
		return outs
	}
}

// compareGraph runs the teacher-forced pass with iv's interventions, from
// block start on (reading inResume when start > 0), and returns per window
// position the KL from the reference's clean distributions (inCleanDist)
// and the targets' log-probabilities.
func (m *Model) compareGraph(iv Interventions, names []string, start int) func(g *Graph, in []*Node) []*Node {
	c := m.Config
	nWeights := len(m.weightList)
	return func(g *Graph, in []*Node) []*Node {
		w := fromFlat(&c, in[:nWeights])
		named := bindNames(names, in[nWeights:])
		ls, _ := logProbsGraph(&c, w, named, iv, start, named[inResume])
		lc := named[inCleanDist]
		outs, err := inOrder(compareOutputNames, map[string]*Node{
			outKL:        ReduceSum(Mul(Exp(lc), Sub(lc, ls)), -1), // [B, R]
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
