package models

import (
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph code reads better unqualified, as in GoMLX's own examples.
)

// stepGraph returns the graph function of one step: the forward pass over
// the new tokens, reading and extending the KV cache. Inputs and outputs
// are named by stepInputNames and stepOutputNames.
func (m *Model) stepGraph(iv Interventions) func(g *Graph, in []*Node) []*Node {
	c := m.Config
	nWeights := len(m.weightList)
	inNames, outNames := stepInputNames(&c, iv), stepOutputNames(&c, iv)
	return func(g *Graph, in []*Node) []*Node {
		w := fromFlat(&c, in[:nWeights])
		x := newStepInputs(&c, bindNames(inNames, in[nWeights:]), iv)
		o := forward(&c, w, x, 0, nil)
		outs, err := inOrder(outNames, o)
		if err != nil {
			panic(err)
		}
		return outs
	}
}

// suffixInputNames are the inputs of a layer-sweep suffix: tokens,
// positions, key validity and steering for K·B rows (K copies of B
// prompts), offset 0, and the clean stream of the B prompts.
var suffixInputNames = []string{inTokens, inPositions, inKeyValid, inOffset, inSteer, inStreams}

// suffixGraph runs blocks start..n_layers-1 of a plain forward pass from the
// clean residual stream entering block start (taken from a Streams output),
// with steering: the layer sweep's suffix programs, which do not recompute the blocks
// before the first steered one. Output: the last position's logits.
func (m *Model) suffixGraph(start int) func(g *Graph, in []*Node) []*Node {
	c := m.Config
	nWeights := len(m.weightList)
	return func(g *Graph, in []*Node) []*Node {
		w := fromFlat(&c, in[:nWeights])
		named := bindNames(suffixInputNames, in[nWeights:])
		x := newStepInputs(&c, named, Interventions{Steer: true})
		batch, seq := x.tokens.Shape().Dim(0), x.tokens.Shape().Dim(1)
		cacheShape := shapes.Make(c.actDType(), batch, c.NumKVHeads, seq, c.HeadDim)
		for i := start; i < c.NumLayers; i++ {
			x.kCache[i], x.vCache[i] = Zeros(g, cacheShape), Zeros(g, cacheShape)
		}
		// The clean stream of the B prompts, repeated once per layer of the
		// chunk: rows [j·B, (j+1)·B) are steered at the chunk's j-th layer.
		streams := named[inStreams]
		prompts := streams.Shape().Dim(1)
		h := Reshape(Slice(streams, AxisElem(start)), prompts, seq, c.DModel)
		copies := make([]*Node, batch/prompts)
		for j := range copies {
			copies[j] = h
		}
		return []*Node{forward(&c, w, x, start, Concatenate(copies, 0))[outLogits]}
	}
}

// forward runs the decoder over the step's new tokens: blocks start..n_layers-1,
// from the embedded tokens when start is 0, else from h, the stream entering
// block start. It returns its outputs by name (see stepOutputNames).
func forward(c *Config, w *Params[*Node], x *stepInputs, start int, h *Node) map[string]*Node {
	batch, seq := x.tokens.Shape().Dim(0), x.tokens.Shape().Dim(1)
	rope := newRoPETables(c, x.positions)
	masks := newAttentionMasks(c, x)

	if start == 0 {
		h = Gather(w.Embed, ExpandAxes(x.tokens, -1)) // [B, S, d_model]
		h = scaleBy(h, c.EmbedScale)
	}
	out := map[string]*Node{}
	for i := start; i < c.NumLayers; i++ {
		b := &w.Blocks[i]
		h = x.atBlockInput(i, h)

		attn, k, v := attention(c, b, maybeNorm(c, h, b.AttnNorm), rope.of(c, i), masks[c.Layers[i].Type],
			x.kCache[i], x.vCache[i], x.offset)
		out[kCacheName(i)], out[vCacheName(i)] = k, v
		attn = maybeNorm(c, attn, b.AttnPostNorm)
		h = Add(h, x.atBlockOutput(scaleBy(attn, c.ResidualScale)))

		mlp := gatedMLP(c, b, maybeNorm(c, h, b.MLPNorm))
		mlp = maybeNorm(c, mlp, b.MLPPostNorm)
		h = Add(h, x.atBlockOutput(scaleBy(mlp, c.ResidualScale)))
	}
	h = rmsNorm(c, h, w.FinalNorm)
	x.captureAt(h)
	if x.capture != nil {
		out[outCaptured] = Stack(x.captured, 0) // [n_layers+1, B, d_model]
	}
	if x.keepStreams {
		out[outStreams] = Stack(x.streams, 0) // [n_layers, B, S, d_model]
	}

	out[outHidden] = h
	last := Reshape(Slice(h, AxisRange(), AxisElem(seq-1)), batch, c.DModel)
	out[outLogits] = lmHead(c, w, last, "bd,vd->bv") // [B, vocab]
	return out
}

// lmHead projects final hidden states onto the vocabulary (equation: "bd,vd->bv"
// for [B, d_model], "bsd,vd->bsv" for every position), in float32 whatever
// the dtype, with the family's logit divisor and soft-cap.
func lmHead(c *Config, w *Params[*Node], h *Node, equation string) *Node {
	head := w.LMHead
	if c.TiedEmbeddings {
		head = w.Embed // tied: the output projection is the embedding matrix
	}
	logits := toFloat32(Einsum(equation, h, head))
	if c.LogitsDivisor != 0 && c.LogitsDivisor != 1 {
		logits = DivScalar(logits, c.LogitsDivisor)
	}
	return softcap(logits, c.FinalSoftcap)
}

// scaleBy multiplies by s unless s is 0 or 1 (no scale).
func scaleBy(x *Node, s float64) *Node {
	if s == 0 || s == 1 {
		return x
	}
	return MulScalar(x, s)
}

// softcap: cap·tanh(x/cap) (Gemma 2); cap 0 is none.
func softcap(x *Node, limit float64) *Node {
	if limit == 0 {
		return x
	}
	return MulScalar(Tanh(DivScalar(x, limit)), limit)
}

// maybeNorm applies an RMSNorm when the family has that norm (weight non-nil).
func maybeNorm(c *Config, x, weight *Node) *Node {
	if weight == nil {
		return x
	}
	return rmsNorm(c, x, weight)
}

// rmsNorm: x / sqrt(mean(x²) + eps) · weight, over the last axis (Zhang &
// Sennrich 2019). The statistics are computed in float32 and the result
// cast back to x's dtype as each family's transformers code does: Llama and
// most families cast before multiplying by the weight (rounded to the
// dtype); Gemma multiplies by its float32 1 + w, and OLMo 2 by its weight,
// in float32, then casts. The weight is float32 on the device (weightSpec.norm).
func rmsNorm(c *Config, x, weight *Node) *Node {
	dt := x.DType()
	xf := toFloat32(x)
	meanSq := ReduceAndKeep(Square(xf), ReduceMean, -1)
	// x / sqrt(·) rather than x · rsqrt(·): compute-onnx has no Rsqrt, and XLA
	// emits the same instruction for both.
	normed := Div(xf, Sqrt(AddScalar(meanSq, c.RMSNormEps)))
	w := ExpandLeftToRank(weight, x.Rank())
	if dt == dtypes.Float32 {
		return Mul(normed, w)
	}
	if c.family != nil && (c.family.NormPlusOne || c.family.NormMulFloat32) {
		if !c.family.NormPlusOne {
			w = toFloat32(ConvertDType(w, dt)) // the weight as stored in the dtype
		}
		return ConvertDType(Mul(normed, w), dt)
	}
	return Mul(ConvertDType(normed, dt), ConvertDType(w, dt))
}

// toFloat32 converts x to float32 (itself when it is).
func toFloat32(x *Node) *Node {
	if x.DType() == dtypes.Float32 {
		return x
	}
	return ConvertDType(x, dtypes.Float32)
}

// linear applies a [out, in] weight (and optional bias) to the last axis of x.
func linear(x, weight, bias *Node) *Node {
	y := Einsum("bsi,oi->bso", x, weight)
	if bias != nil {
		y = Add(y, ExpandLeftToRank(bias, y.Rank()))
	}
	return y
}

// gatedMLP: down(act(gate(x)) ⊙ up(x)), SwiGLU or GeGLU.
func gatedMLP(c *Config, b *BlockParams[*Node], x *Node) *Node {
	gate := activation(c.Activation, linear(x, b.Gate, b.GateBias))
	return linear(Mul(gate, linear(x, b.Up, b.UpBias)), b.Down, b.DownBias)
}

// activation applies the MLP's activation by its transformers name.
func activation(name string, x *Node) *Node {
	switch name {
	case "gelu_pytorch_tanh": // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
		inner := MulScalar(Add(x, MulScalar(Mul(x, Square(x)), 0.044715)), math.Sqrt(2/math.Pi))
		return Mul(MulScalar(x, 0.5), OnePlus(Tanh(inner)))
	case "gelu": // exact: 0.5·x·(1 + erf(x/√2))
		return Mul(MulScalar(x, 0.5), OnePlus(Erf(MulScalar(x, 1/math.Sqrt2))))
	default: // silu
		return Mul(x, Sigmoid(x))
	}
}

// attention is grouped-query causal self-attention over the KV cache. It
// writes the new keys and values at slots [offset, offset+S) and returns the
// output projection [B, S, d_model] and the updated caches.
func attention(c *Config, b *BlockParams[*Node], x *Node, rope *ropeTable, mask, kCache, vCache, offset *Node) (out, kNew, vNew *Node) {
	batch, seq := x.Shape().Dim(0), x.Shape().Dim(1)
	hd, nKV := c.HeadDim, c.NumKVHeads
	group := c.NumHeads / nKV

	q, k, v := linear(x, b.Q, b.QBias), linear(x, b.K, b.KBias), linear(x, b.V, b.VBias) // [B, S, heads·hd]
	if c.family.QKNorm == QKNormFull {
		q, k = rmsNorm(c, q, b.QNorm), rmsNorm(c, k, b.KNorm)
	}
	q = Reshape(q, batch, seq, c.NumHeads, hd) // [B, S, H, hd]
	k = Reshape(k, batch, seq, nKV, hd)        // [B, S, KV, hd]
	v = Reshape(v, batch, seq, nKV, hd)
	if c.family.QKNorm == QKNormHead {
		q, k = rmsNorm(c, q, b.QNorm), rmsNorm(c, k, b.KNorm)
	}
	if rope != nil {
		q, k = rope.apply(q), rope.apply(k)
	}

	zero := ScalarZero(x.Graph(), dtypes.Int32)
	kNew = DynamicUpdateSlice(kCache, Transpose(k, 1, 2), []*Node{zero, zero, offset, zero}) // [B, KV, T, hd]
	vNew = DynamicUpdateSlice(vCache, Transpose(v, 1, 2), []*Node{zero, zero, offset, zero})

	// Query head h uses key head h / group (Hugging Face's repeat_kv order).
	qg := Reshape(Transpose(q, 1, 2), batch, nKV, group, seq, hd) // [B, KV, G, S, hd]
	scores := Einsum("bkgsd,bktd->bkgst", qg, kNew)               // [B, KV, G, S, T]
	scale := c.AttentionScale
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(hd))
	}
	// Scale, soft-cap, mask and softmax in float32; the probabilities are
	// cast back to the dtype for the product with V (as transformers'
	// softmax(..., dtype=torch.float32).to(query.dtype)).
	scores = softcap(MulScalar(toFloat32(scores), scale), c.AttnSoftcap)
	// A large finite negative, not -inf: a fully masked row (a left-padding
	// query) must stay finite so no NaN reaches the cache.
	scores = Where(BroadcastToDims(mask, scores.Shape().Dimensions...), scores, Scalar(x.Graph(), dtypes.Float32, -1e9))
	probs := Softmax(scores, -1)
	if dt := x.DType(); dt != dtypes.Float32 {
		probs = ConvertDType(probs, dt)
	}
	ctx := Einsum("bkgst,bktd->bkgsd", probs, vNew) // [B, KV, G, S, hd]
	ctx = Reshape(Transpose(Reshape(ctx, batch, c.NumHeads, seq, hd), 1, 2), batch, seq, c.NumHeads*hd)
	return linear(ctx, b.O, b.OBias), kNew, vNew
}

// newAttentionMasks returns the mask of each layer type, [B, 1, 1, S, T]
// bool: the query at slot offset+s sees cache slot t when t ≤ offset+s,
// slot t holds a real token, and, in a sliding layer, t > offset+s − window.
// Slots and positions differ by the row's left padding only, so the window
// is the same on either.
func newAttentionMasks(c *Config, x *stepInputs) map[LayerType]*Node {
	g := x.tokens.Graph()
	batch, seq := x.tokens.Shape().Dim(0), x.tokens.Shape().Dim(1)
	slots := x.keyValid.Shape().Dim(1)
	qSlot := Add(Iota(g, shapes.Make(dtypes.Int32, seq, 1), 0), x.offset) // [S, 1]
	kSlot := Iota(g, shapes.Make(dtypes.Int32, 1, slots), 1)              // [1, T]
	causal := LessOrEqual(kSlot, qSlot)                                   // [S, T]
	valid := Reshape(GreaterThan(x.keyValid, ScalarZero(g, dtypes.Float32)), batch, 1, slots)
	mask := func(allowed *Node) *Node {
		return Reshape(LogicalAnd(Reshape(allowed, 1, seq, slots), valid), batch, 1, 1, seq, slots)
	}
	masks := map[LayerType]*Node{FullAttention: mask(causal)}
	if c.SlidingWindow > 0 {
		inWindow := GreaterThan(kSlot, SubScalar(qSlot, c.SlidingWindow))
		masks[SlidingAttention] = mask(LogicalAnd(causal, inWindow))
	}
	return masks
}

// ropeTable holds cos and sin of one rotary embedding's angles,
// [B, S, 1, rotary_dim], laid out for Hugging Face's rotate_half convention
// and already multiplied by its attention factor.
type ropeTable struct{ cos, sin *Node }

// ropeTables are the tables of a step, one per distinct RoPE of the config.
type ropeTables map[*RoPE]*ropeTable

func newRoPETables(c *Config, positions *Node) ropeTables {
	t := ropeTables{}
	for _, r := range []*RoPE{&c.RoPE, c.SlidingRoPE} {
		if r != nil {
			t[r] = newRoPETable(r, positions, c.actDType())
		}
	}
	return t
}

// of returns layer i's table, nil when the layer has no rotary embedding.
func (t ropeTables) of(c *Config, i int) *ropeTable {
	if r := c.ropeOf(i); r != nil {
		return t[r]
	}
	return nil
}

// newRoPETable computes cos and sin in float32 and casts them to dt, as
// transformers' rotary embedding returns cos.to(x.dtype), sin.to(x.dtype).
func newRoPETable(r *RoPE, positions *Node, dt dtypes.DType) *ropeTable {
	g := positions.Graph()
	batch, seq := positions.Shape().Dim(0), positions.Shape().Dim(1)
	invFreq, factor := r.InvFrequencies()
	half := len(invFreq)
	inv := Const(g, invFreq)                                             // [rot/2]
	pos := ConvertDType(MaxScalar(positions, 0), dtypes.Float32)         // padding slots get position 0
	angles := Mul(Reshape(pos, batch, seq, 1), Reshape(inv, 1, 1, half)) // [B, S, rot/2]
	angles = Reshape(Concatenate([]*Node{angles, angles}, -1), batch, seq, 1, 2*half)
	cos, sin := scaleBy(Cos(angles), factor), scaleBy(Sin(angles), factor)
	if dt != dtypes.Float32 {
		cos, sin = ConvertDType(cos, dt), ConvertDType(sin, dt)
	}
	return &ropeTable{cos: cos, sin: sin}
}

// apply rotates the first rotary_dim dims of x [B, S, heads, hd]:
// x·cos + rotate_half(x)·sin; the rest pass through (partial rotary).
func (t *ropeTable) apply(x *Node) *Node {
	hd, rot := x.Shape().Dim(-1), t.cos.Shape().Dim(-1)
	xr := x
	if rot < hd {
		xr = Slice(x, AxisRange(), AxisRange(), AxisRange(), AxisRange(0, rot))
	}
	x1 := Slice(xr, AxisRange(), AxisRange(), AxisRange(), AxisRange(0, rot/2))
	x2 := Slice(xr, AxisRange(), AxisRange(), AxisRange(), AxisRange(rot/2))
	rotated := Add(Mul(xr, t.cos), Mul(Concatenate([]*Node{Neg(x2), x1}, -1), t.sin))
	if rot < hd {
		return Concatenate([]*Node{rotated, Slice(x, AxisRange(), AxisRange(), AxisRange(), AxisRange(rot))}, -1)
	}
	return rotated
}
