package models

import (
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph code reads better unqualified, as in GoMLX's own examples.
)

// Interventions fixes, when a graph is built, which captures and
// interventions it has. The values they use (the steering vectors, the
// ablated direction, the capture mask) are inputs of the compiled graph, so
// a coefficient sweep or a layer sweep reuses one compiled program.
//
// Residual-stream boundaries are numbered 0..n_layers: boundary i < n_layers is
// the stream entering block i (boundary 0 is the embedding output), and
// boundary n_layers is the final hidden state after the model's final norm,
// as in Hugging Face's output_hidden_states.
type Interventions struct {
	// Capture returns, per boundary and sequence, the sum of the residual
	// stream over the positions of a mask: [n_layers+1, batch, d_model].
	Capture bool
	// Steer adds steer[b, i] to row b's stream entering block i, at every
	// position (activation addition). Input steer: [batch, n_layers, d_model],
	// so each row of a batch may steer its own layer (the layer sweep).
	Steer bool
	// Ablate removes the component along a unit direction r̂ at every block
	// input and from every attention and MLP output (directional ablation,
	// Arditi et al. 2024). Input: [d_model].
	Ablate bool
	// Streams returns the whole residual stream entering every block,
	// [n_layers, batch, seq, d_model], for the lean layer sweep.
	Streams bool
}

// stepInputs are the graph inputs after the weights, for one step that
// appends S new tokens to a KV cache of T slots.
type stepInputs struct {
	tokens    *Node   // [B, S] int32
	positions *Node   // [B, S] int32: RoPE position of each new token (slot minus left padding)
	keyValid  *Node   // [B, T] float32: 1 for cache slots holding a real token (0 for left padding)
	offset    *Node   // [] int32: cache slot of the first new token
	kCache    []*Node // per layer [B, n_kv_heads, T, head_dim]
	vCache    []*Node
	capture   *Node // [B, S] float32 mask, with Interventions.Capture
	steer     *Node // [B, n_layers, d_model], with Interventions.Steer
	ablate    *Node // [d_model] unit vector, with Interventions.Ablate

	keepStreams bool // return the stream entering every block (Interventions.Streams)
}

// stepGraph returns the graph function of one step: the forward pass over
// the new tokens, reading and extending the KV cache. Its outputs are the
// last position's logits [B, vocab], the updated caches (K then V per
// layer), with Capture the masked sums [n_layers+1, B, d_model], and with
// Streams the stream entering every block, [n_layers, B, S, d_model].
func (m *Model) stepGraph(iv Interventions) func(g *Graph, in []*Node) []*Node {
	c := m.Config
	nWeights := len(m.weightList)
	return func(g *Graph, in []*Node) []*Node {
		w := fromFlat(&c, in[:nWeights])
		x, rest := stepInputsFrom(&c, in[nWeights:])
		x.kCache, x.vCache = rest[:c.NumLayers], rest[c.NumLayers:2*c.NumLayers]
		rest = rest[2*c.NumLayers:]
		if iv.Capture {
			x.capture, rest = rest[0], rest[1:]
		}
		if iv.Steer {
			x.steer, rest = rest[0], rest[1:]
		}
		if iv.Ablate {
			x.ablate = rest[0]
		}
		x.keepStreams = iv.Streams
		o := forward(&c, w, x, 0, nil)
		out := append([]*Node{o.logits}, o.kOut...)
		out = append(out, o.vOut...)
		if iv.Capture {
			out = append(out, o.captured)
		}
		if iv.Streams {
			out = append(out, o.streams)
		}
		return out
	}
}

// stepInputsFrom reads the inputs every step starts with: tokens,
// positions, key validity and cache offset.
func stepInputsFrom(c *Config, in []*Node) (*stepInputs, []*Node) {
	return &stepInputs{tokens: in[0], positions: in[1], keyValid: in[2], offset: in[3]}, in[4:]
}

// suffixGraph runs blocks start..n_layers-1 of a plain forward pass from the
// clean residual stream entering block start (taken from a Streams output),
// with steering: the lean layer sweep, which does not recompute the blocks
// before the first steered one. Inputs after the weights: tokens, positions,
// keyValid and steer for K·B rows (K copies of the B prompts), offset (0),
// and streams [n_layers, B, S, d_model]. Output: the last position's logits.
func (m *Model) suffixGraph(start int) func(g *Graph, in []*Node) []*Node {
	c := m.Config
	nWeights := len(m.weightList)
	return func(g *Graph, in []*Node) []*Node {
		w := fromFlat(&c, in[:nWeights])
		x, rest := stepInputsFrom(&c, in[nWeights:])
		streams := rest[0]
		x.steer = rest[1]
		batch, seq := x.tokens.Shape().Dim(0), x.tokens.Shape().Dim(1)
		cacheShape := shapes.Make(dtypes.Float32, batch, c.NumKVHeads, seq, c.HeadDim)
		x.kCache, x.vCache = make([]*Node, c.NumLayers), make([]*Node, c.NumLayers)
		for i := start; i < c.NumLayers; i++ {
			x.kCache[i], x.vCache[i] = Zeros(g, cacheShape), Zeros(g, cacheShape)
		}
		// The clean stream of the B prompts, repeated once per layer of the
		// chunk: rows [j·B, (j+1)·B) are steered at the chunk's j-th layer.
		prompts := streams.Shape().Dim(1)
		h := Reshape(Slice(streams, AxisElem(start)), prompts, seq, c.DModel)
		copies := make([]*Node, batch/prompts)
		for j := range copies {
			copies[j] = h
		}
		return []*Node{forward(&c, w, x, start, Concatenate(copies, 0)).logits}
	}
}

// stepOutputs are forward's results (see stepGraph).
type stepOutputs struct {
	logits     *Node
	kOut, vOut []*Node
	captured   *Node
	streams    *Node
}

// forward runs the decoder over the step's new tokens: blocks start..n_layers-1,
// from the embedded tokens when start is 0, else from h, the stream entering block start.
func forward(c *Config, w *Params[*Node], x *stepInputs, start int, h *Node) (o stepOutputs) {
	batch, seq := x.tokens.Shape().Dim(0), x.tokens.Shape().Dim(1)
	cos, sin := ropeTables(c, x.positions) // [B, S, 1, head_dim]
	mask := attentionMask(x)               // [B, 1, 1, S, T] bool

	var rows []*Node    // captured boundary sums, each [B, d_model]
	var streams []*Node // the stream entering each block, each [B, S, d_model]
	capture := func(h *Node) {
		if x.capture != nil {
			rows = append(rows, Einsum("bsd,bs->bd", h, x.capture))
		}
	}

	if start == 0 {
		h = Gather(w.Embed, ExpandAxes(x.tokens, -1)) // [B, S, d_model]
	}
	for i := start; i < c.NumLayers; i++ {
		b := &w.Blocks[i]
		// The residual stream entering block i: interventions, then capture.
		if x.ablate != nil {
			h = ablate(h, x.ablate)
		}
		if x.steer != nil {
			h = Add(h, Slice(x.steer, AxisRange(), AxisElem(i))) // [B, 1, d_model] at every position
		}
		capture(h)
		if x.keepStreams {
			streams = append(streams, h)
		}

		attn, k, v := attention(c, b, rmsNorm(c, h, b.AttnNorm), cos, sin, mask, x.kCache[i], x.vCache[i], x.offset)
		o.kOut, o.vOut = append(o.kOut, k), append(o.vOut, v)
		if x.ablate != nil {
			attn = ablate(attn, x.ablate)
		}
		h = Add(h, attn)

		mlp := swiGLU(b, rmsNorm(c, h, b.MLPNorm))
		if x.ablate != nil {
			mlp = ablate(mlp, x.ablate)
		}
		h = Add(h, mlp)
	}
	h = rmsNorm(c, h, w.FinalNorm)
	capture(h)
	if x.capture != nil {
		o.captured = Stack(rows, 0) // [n_layers+1, B, d_model]
	}
	if x.keepStreams {
		o.streams = Stack(streams, 0) // [n_layers, B, S, d_model]
	}

	head := w.LMHead
	if c.TiedEmbeddings {
		head = w.Embed // tied: the output projection is the embedding matrix
	}
	last := Reshape(Slice(h, AxisRange(), AxisElem(seq-1)), batch, c.DModel)
	o.logits = Einsum("bd,vd->bv", last, head) // [B, vocab]
	return o
}

// rmsNorm: x / sqrt(mean(x²) + eps) · weight, over the last axis (Zhang & Sennrich 2019).
func rmsNorm(c *Config, x, weight *Node) *Node {
	meanSq := ReduceAndKeep(Square(x), ReduceMean, -1)
	// x / sqrt(·) rather than x · rsqrt(·): compute-onnx has no Rsqrt, and XLA
	// emits the same instruction for both.
	return Mul(Div(x, Sqrt(AddScalar(meanSq, c.RMSNormEps))), ExpandLeftToRank(weight, x.Rank()))
}

// linear applies a [out, in] weight (and optional bias) to the last axis of x.
func linear(x, weight, bias *Node) *Node {
	y := Einsum("bsi,oi->bso", x, weight)
	if bias != nil {
		y = Add(y, ExpandLeftToRank(bias, y.Rank()))
	}
	return y
}

// swiGLU is the gated MLP: down(silu(gate(x)) ⊙ up(x)).
func swiGLU(b *BlockParams[*Node], x *Node) *Node {
	gate := linear(x, b.Gate, nil)
	gate = Mul(gate, Sigmoid(gate)) // SiLU
	return linear(Mul(gate, linear(x, b.Up, nil)), b.Down, nil)
}

// attention is grouped-query causal self-attention over the KV cache. It
// writes the new keys and values at slots [offset, offset+S) and returns the
// output projection [B, S, d_model] and the updated caches.
func attention(c *Config, b *BlockParams[*Node], x, cos, sin, mask, kCache, vCache, offset *Node) (out, kNew, vNew *Node) {
	batch, seq := x.Shape().Dim(0), x.Shape().Dim(1)
	hd, nKV := c.HeadDim, c.NumKVHeads
	group := c.NumHeads / nKV

	q := Reshape(linear(x, b.Q, b.QBias), batch, seq, c.NumHeads, hd) // [B, S, H, hd]
	k := Reshape(linear(x, b.K, b.KBias), batch, seq, nKV, hd)        // [B, S, KV, hd]
	v := Reshape(linear(x, b.V, b.VBias), batch, seq, nKV, hd)
	q, k = applyRoPE(q, cos, sin), applyRoPE(k, cos, sin)

	zero := ScalarZero(x.Graph(), dtypes.Int32)
	kNew = DynamicUpdateSlice(kCache, Transpose(k, 1, 2), []*Node{zero, zero, offset, zero}) // [B, KV, T, hd]
	vNew = DynamicUpdateSlice(vCache, Transpose(v, 1, 2), []*Node{zero, zero, offset, zero})

	// Query head h uses key head h / group (Hugging Face's repeat_kv order).
	qg := Reshape(Transpose(q, 1, 2), batch, nKV, group, seq, hd) // [B, KV, G, S, hd]
	scores := Einsum("bkgsd,bktd->bkgst", qg, kNew)               // [B, KV, G, S, T]
	scores = MulScalar(scores, 1/math.Sqrt(float64(hd)))
	// A large finite negative, not -inf: a fully masked row (a left-padding
	// query) must stay finite so no NaN reaches the cache.
	scores = Where(BroadcastToDims(mask, scores.Shape().Dimensions...), scores, Scalar(x.Graph(), dtypes.Float32, -1e9))
	probs := Softmax(scores, -1)
	ctx := Einsum("bkgst,bktd->bkgsd", probs, vNew) // [B, KV, G, S, hd]
	ctx = Reshape(Transpose(Reshape(ctx, batch, c.NumHeads, seq, hd), 1, 2), batch, seq, c.NumHeads*hd)
	return linear(ctx, b.O, nil), kNew, vNew
}

// attentionMask: the query at slot offset+s sees cache slot t when t ≤ offset+s
// and slot t holds a real token. Shape [B, 1, 1, S, T].
func attentionMask(x *stepInputs) *Node {
	g := x.tokens.Graph()
	batch, seq := x.tokens.Shape().Dim(0), x.tokens.Shape().Dim(1)
	slots := x.keyValid.Shape().Dim(1)
	qSlot := Add(Iota(g, shapes.Make(dtypes.Int32, seq, 1), 0), x.offset) // [S, 1]
	kSlot := Iota(g, shapes.Make(dtypes.Int32, 1, slots), 1)              // [1, T]
	causal := Reshape(LessOrEqual(kSlot, qSlot), 1, seq, slots)           // [1, S, T]
	valid := Reshape(GreaterThan(x.keyValid, ScalarZero(g, dtypes.Float32)), batch, 1, slots)
	return Reshape(LogicalAnd(causal, valid), batch, 1, 1, seq, slots)
}

// ropeTables returns cos and sin of the rotary angles, [B, S, 1, head_dim],
// laid out for Hugging Face's rotate_half convention.
func ropeTables(c *Config, positions *Node) (cos, sin *Node) {
	g := positions.Graph()
	batch, seq := positions.Shape().Dim(0), positions.Shape().Dim(1)
	inv := Const(g, c.InvFrequencies())                                         // [hd/2]
	pos := ConvertDType(MaxScalar(positions, 0), dtypes.Float32)                // padding slots get position 0
	angles := Mul(Reshape(pos, batch, seq, 1), Reshape(inv, 1, 1, c.HeadDim/2)) // [B, S, hd/2]
	angles = Concatenate([]*Node{angles, angles}, -1)
	return Reshape(Cos(angles), batch, seq, 1, c.HeadDim), Reshape(Sin(angles), batch, seq, 1, c.HeadDim)
}

// applyRoPE rotates x [B, S, heads, hd]: x·cos + rotate_half(x)·sin.
func applyRoPE(x, cos, sin *Node) *Node {
	half := x.Shape().Dim(-1) / 2
	x1 := Slice(x, AxisRange(), AxisRange(), AxisRange(), AxisRange(0, half))
	x2 := Slice(x, AxisRange(), AxisRange(), AxisRange(), AxisRange(half))
	rotated := Concatenate([]*Node{Neg(x2), x1}, -1)
	return Add(Mul(x, cos), Mul(rotated, sin))
}

// ablate removes the component of x [B, S, d] along the unit direction r [d]: x - (x·r) r.
func ablate(x, r *Node) *Node {
	proj := Einsum("bsd,d->bs", x, r)
	return Sub(x, Mul(ExpandAxes(proj, -1), ExpandLeftToRank(r, x.Rank())))
}
