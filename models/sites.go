package models

import (
	"fmt"
	"strings"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph code reads better unqualified, as in GoMLX's own examples.
)

// Interventions fixes, when a graph is built, which captures and
// interventions it has. The values they use (the steering vectors, the
// ablated direction, the capture mask) are named inputs of the compiled
// graph, so a coefficient or layer sweep reuses one compiled program.
//
// They act at named sites of the residual stream, numbered as transformers'
// hidden_states: site "layer.i" (i < n_layers) is the stream entering block
// i (layer.0 is the embedding output), and "layer.n_layers" the final hidden
// state after the model's final norm; "attn_out.i" and "mlp_out.i" are what
// block i's attention and MLP add to the stream. A refusal vector's layer l
// is read at site layer.l.
type Interventions struct {
	// Capture returns, at every layer site, the sum of
	// the stream over the positions of the input capture_mask [B, S]:
	// output "captured" [n_layers+1, batch, d_model].
	Capture bool
	// Steer adds steer[b, i] to row b's stream at layer.i (i < n_layers), at every
	// position (activation addition). Input "steer": [batch, n_layers,
	// d_model], so each row of a batch may steer its own layer (the layer sweep).
	Steer bool
	// Ablate removes the component along the unit direction of input
	// "ablate_direction" [d_model] at every layer.i (i < n_layers), attn_out and
	// mlp_out site (directional ablation, Arditi et al. 2024).
	Ablate bool
	// Streams returns the stream at every layer.i site (i < n_layers), output
	// "streams" [n_layers, batch, seq, d_model], for the layer sweep's suffix programs.
	Streams bool
}

// Names of a step graph's inputs and outputs after the weights. Each graph
// declares its list once (stepInputNames, stepOutputNames); both the graph
// and its caller look values up by name, never by position.
const (
	inTokens    = "tokens"           // [B, S] int32
	inPositions = "positions"        // [B, S] int32: RoPE position of each new token (slot minus left padding)
	inKeyValid  = "key_valid"        // [B, T] float32: 1 for cache slots holding a real token (0 for left padding)
	inOffset    = "offset"           // [] int32: cache slot of the first new token
	inCapture   = "capture_mask"     // [B, S] float32, with Capture
	inSteer     = "steer"            // [B, n_layers, d_model], with Steer
	inAblate    = "ablate_direction" // [d_model] unit vector, with Ablate
	inStreams   = "streams"          // [n_layers, B', S, d_model]: the clean stream (sweep suffixes)

	outLogits   = "logits"   // [B, vocab]: the last position
	outCaptured = "captured" // [n_layers+1, B, d_model]
	outStreams  = "streams"  // [n_layers, B, S, d_model]
	outHidden   = "hidden"   // [B, S, d_model]: the final hidden state (layer n_layers) at every position

	// The comparison program (compare.go).
	// R is the scored window: the R positions before the last (see logProbsGraph).
	inTargets    = "targets"        // [B, R] int32: the token each window position predicts
	outKL        = "kl"             // [B, R]: KL(clean ‖ intervened) of the next-token distributions
	outCleanLogP = "clean_logp"     // [B, R]: log-probability of the target, clean
	outSteerLogP = "steered_logp"   // [B, R]: the same with the interventions
	outCleanDist = "clean_logprobs" // [B, R, vocab] float32: the clean next-token log-probabilities (Reference)
	inCleanDist  = "clean_logprobs" // the same, fed back to compare an intervention with it
	inResume     = "resume_stream"  // [B, S, d_model]: the clean stream entering the block a comparison resumes at
)

// resumeName is the reference program's output of the clean stream
// entering block l (ReferenceOptions.Resume), [B, S, d_model].
func resumeName(l int) string { return fmt.Sprintf("resume_stream.%d", l) }

func kCacheName(i int) string { return fmt.Sprintf("k_cache.%d", i) } // [B, n_kv_heads, T, head_dim]
func vCacheName(i int) string { return fmt.Sprintf("v_cache.%d", i) }

// isCacheName reports whether a program input or output is a KV cache.
func isCacheName(name string) bool {
	return strings.HasPrefix(name, "k_cache.") || strings.HasPrefix(name, "v_cache.")
}

// cacheNames lists the KV-cache names, K of every layer then V.
func cacheNames(c *Config) []string {
	var names []string
	for i := range c.NumLayers {
		names = append(names, kCacheName(i))
	}
	for i := range c.NumLayers {
		names = append(names, vCacheName(i))
	}
	return names
}

// stepInputNames lists a step graph's inputs after the weights, in order.
func stepInputNames(c *Config, iv Interventions) []string {
	names := append([]string{inTokens, inPositions, inKeyValid, inOffset}, cacheNames(c)...)
	if iv.Capture {
		names = append(names, inCapture)
	}
	if iv.Steer {
		names = append(names, inSteer)
	}
	if iv.Ablate {
		names = append(names, inAblate)
	}
	return names
}

// stepOutputNames lists a step graph's outputs, in order.
func stepOutputNames(c *Config, iv Interventions) []string {
	names := append([]string{outLogits}, cacheNames(c)...)
	if iv.Capture {
		names = append(names, outCaptured)
	}
	if iv.Streams {
		names = append(names, outStreams)
	}
	return names
}

// bindNames pairs graph nodes with their names.
func bindNames(names []string, nodes []*Node) map[string]*Node {
	if len(names) != len(nodes) {
		panic(fmt.Sprintf("graph has %d inputs for %d names %v", len(nodes), len(names), names))
	}
	m := make(map[string]*Node, len(names))
	for i, n := range names {
		m[n] = nodes[i]
	}
	return m
}

// inOrder returns the named values in the order of names; a missing one is an error.
func inOrder[T any](names []string, values map[string]T) ([]T, error) {
	out := make([]T, len(names))
	for i, n := range names {
		v, ok := values[n]
		if !ok {
			return nil, fmt.Errorf("no value for graph input %q", n)
		}
		out[i] = v
	}
	return out, nil
}

// stepInputs are a step's named inputs, as forward uses them.
type stepInputs struct {
	tokens, positions, keyValid, offset *Node
	kCache, vCache                      []*Node // per layer
	capture                             *Node   // nil without Capture
	steer                               *Node   // nil without Steer
	ablate                              *Node   // nil without Ablate
	keepStreams                         bool

	// Filled by forward at the sites.
	captured []*Node // per site, [B, d_model]
	streams  []*Node // per layer.i site (i < n_layers), [B, S, d_model]
}

// newStepInputs reads the named inputs of a step.
func newStepInputs(c *Config, in map[string]*Node, iv Interventions) *stepInputs {
	x := &stepInputs{tokens: in[inTokens], positions: in[inPositions], keyValid: in[inKeyValid], offset: in[inOffset],
		capture: in[inCapture], steer: in[inSteer], ablate: in[inAblate], keepStreams: iv.Streams}
	x.kCache, x.vCache = make([]*Node, c.NumLayers), make([]*Node, c.NumLayers)
	for i := range c.NumLayers {
		x.kCache[i], x.vCache[i] = in[kCacheName(i)], in[vCacheName(i)]
	}
	return x
}

// atBlockInput applies the interventions of site layer.i to the
// stream h [B, S, d_model] entering block i: ablation, then steering, then
// capture (so what is captured is what the block reads).
func (x *stepInputs) atBlockInput(i int, h *Node) *Node {
	if x.ablate != nil {
		h = ablate(h, x.ablate)
	}
	if x.steer != nil {
		// The steering input is float32 (vectors are float32 in files and in
		// memory); it is cast to the stream's dtype where it is added.
		h = Add(h, asDTypeOf(Slice(x.steer, AxisRange(), AxisElem(i)), h)) // [B, 1, d_model] at every position
	}
	x.captureAt(h)
	if x.keepStreams {
		x.streams = append(x.streams, h)
	}
	return h
}

// atBlockOutput applies the interventions of sites attn_out.i and mlp_out.i
// to what a block adds to the stream.
func (x *stepInputs) atBlockOutput(out *Node) *Node {
	if x.ablate != nil {
		out = ablate(out, x.ablate)
	}
	return out
}

// captureAt sums the stream over the capture mask's positions.
func (x *stepInputs) captureAt(h *Node) {
	if x.capture != nil {
		// Summed in float32 whatever the dtype, and returned as float32.
		x.captured = append(x.captured, Einsum("bsd,bs->bd", toFloat32(h), x.capture))
	}
}

// ablate removes the component of x [B, S, d] along the unit direction r [d]: x - (x·r) r.
func ablate(x, r *Node) *Node {
	r = asDTypeOf(r, x) // float32 input, cast to the stream's dtype
	proj := Einsum("bsd,d->bs", x, r)
	return Sub(x, Mul(ExpandAxes(proj, -1), ExpandLeftToRank(r, x.Rank())))
}

// asDTypeOf converts v to the dtype of like (itself when it has it).
func asDTypeOf(v, like *Node) *Node {
	if v.DType() == like.DType() {
		return v
	}
	return ConvertDType(v, like.DType())
}
