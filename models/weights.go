package models

import (
	"fmt"
	"strings"

	"github.com/gomlx/compute/dtypes"
)

// Params holds one value per weight of the model. T is *tensors.Tensor when
// the weights are loaded, and *graph.Node inside a graph: the same struct
// names the weights in both places, so the graph code reads like the model.
// A weight the config does not have stays the zero value (nil).
type Params[T any] struct {
	Embed     T // [vocab, d_model]
	Blocks    []BlockParams[T]
	FinalNorm T // [d_model]
	LMHead    T // [vocab, d_model]; absent when the embeddings are tied.
}

// BlockParams are the weights of one block, in Hugging Face's
// [out_features, in_features] layout. Norm weights are the factors the
// stream is multiplied by (Gemma's 1 + w is added on load).
type BlockParams[T any] struct {
	AttnNorm, AttnPostNorm     T // [d_model]: before attention; on its output (Gemma 2/3, OLMo 2)
	Q                          T // [n_heads*head_dim, d_model]
	K, V                       T // [n_kv_heads*head_dim, d_model]
	QBias, KBias, VBias        T // with Config.AttnBias
	QNorm, KNorm               T // [head_dim] per head, or the whole projection (Family.QKNorm)
	O                          T // [d_model, n_heads*head_dim]
	OBias                      T // with Config.OutBias
	MLPNorm, MLPPostNorm       T // [d_model]
	Gate, Up                   T // [ffn, d_model]
	Down                       T // [d_model, ffn]
	GateBias, UpBias, DownBias T // with Config.MLPBias
}

// Slot names of the block weights, used to name them per family.
const (
	slotAttnNorm     = "attn_norm"
	slotAttnPostNorm = "attn_post_norm"
	slotQ            = "q"
	slotK            = "k"
	slotV            = "v"
	slotQKV          = "qkv"
	slotQNorm        = "q_norm"
	slotKNorm        = "k_norm"
	slotO            = "o"
	slotMLPNorm      = "mlp_norm"
	slotMLPPostNorm  = "mlp_post_norm"
	slotGate         = "gate"
	slotUp           = "up"
	slotGateUp       = "gate_up"
	slotDown         = "down"
)

// llamaHFNames are the Hugging Face names (without .weight/.bias) of the
// block weights of Llama, which every family starts from.
var llamaHFNames = map[string]string{
	slotAttnNorm: "input_layernorm", slotQ: "self_attn.q_proj", slotK: "self_attn.k_proj",
	slotV: "self_attn.v_proj", slotQKV: "self_attn.qkv_proj", slotQNorm: "self_attn.q_norm",
	slotKNorm: "self_attn.k_norm", slotO: "self_attn.o_proj", slotMLPNorm: "post_attention_layernorm",
	slotGate: "mlp.gate_proj", slotUp: "mlp.up_proj", slotGateUp: "mlp.gate_up_proj", slotDown: "mlp.down_proj",
}

// ggufNames are llama.cpp's names of the block weights (the same for every
// architecture; a fused Phi-3 gate|up is ffn_up).
var ggufNames = map[string]string{
	slotAttnNorm: "attn_norm", slotAttnPostNorm: "post_attention_norm", slotQ: "attn_q", slotK: "attn_k",
	slotV: "attn_v", slotQKV: "attn_qkv", slotQNorm: "attn_q_norm", slotKNorm: "attn_k_norm",
	slotO: "attn_output", slotMLPNorm: "ffn_norm", slotMLPPostNorm: "post_ffw_norm", slotGate: "ffn_gate",
	slotUp: "ffn_up", slotGateUp: "ffn_up", slotDown: "ffn_down",
}

// weightSpec names one weight in both checkpoint formats, with its shape
// and what loading must do to it.
type weightSpec struct {
	hf, gguf string
	shape    []int
	// rowFrom, fusedRows: the weight is rows [rowFrom, rowFrom+shape[0]) of
	// a fused tensor of fusedRows rows (Phi-3's qkv and gate|up).
	rowFrom, fusedRows int
	// ropeHeads > 0 marks Q and K of a family whose GGUF converter permutes
	// their rows for llama.cpp's interleaved RoPE: un-permuted on GGUF load.
	ropeHeads int
	// plusOne: a norm the family applies as (1 + w); Hugging Face stores w,
	// llama.cpp's converter already stored 1 + w.
	plusOne bool
	// norm: an RMSNorm weight, kept in float32 whatever the model's dtype
	// (d_model values; rmsNorm rounds it as the family's transformers code does).
	norm bool
	// split: which axis is divided across devices with LoadOptions.Devices
	// (Megatron-style tensor parallelism, see devices.go).
	split split
}

// dtype is the type the weight is held in on the device.
func (s weightSpec) dtype(c *Config) dtypes.DType {
	if s.norm {
		return dtypes.Float32
	}
	return c.actDType()
}

// visit calls fn for every weight the config needs, in a fixed order that
// is also the order of the compiled graph's weight inputs.
func (p *Params[T]) visit(c *Config, fn func(s weightSpec, v *T)) {
	f := c.family
	d, hd := c.DModel, c.HeadDim
	qDim, kvDim := c.NumHeads*hd, c.NumKVHeads*hd
	fn(weightSpec{hf: "model.embed_tokens.weight", gguf: "token_embd.weight", shape: []int{c.VocabSize, d}}, &p.Embed)
	if len(p.Blocks) != c.NumLayers {
		p.Blocks = make([]BlockParams[T], c.NumLayers)
	}
	for i := range p.Blocks {
		b := &p.Blocks[i]
		// w names a weight by slot; suffix is "weight" or "bias".
		w := func(slot, suffix string, shape []int, v *T, mod func(*weightSpec)) {
			s := weightSpec{hf: fmt.Sprintf("model.layers.%d.%s.%s", i, f.hfName(slot), suffix),
				gguf: fmt.Sprintf("blk.%d.%s.%s", i, ggufNames[slot], suffix), shape: shape}
			if mod != nil {
				mod(&s)
			}
			fn(s, v)
		}
		norm := func(s *weightSpec) { s.plusOne, s.norm = f.NormPlusOne, true }
		// fused: a part of the Phi-3 qkv or gate|up matrix, else its own tensor.
		fused := func(slot, fusedSlot string, on bool, from, total int) func(*weightSpec) {
			return func(s *weightSpec) {
				if on {
					*s = weightSpec{hf: strings.Replace(s.hf, f.hfName(slot), f.hfName(fusedSlot), 1),
						gguf:  strings.Replace(s.gguf, ggufNames[slot], ggufNames[fusedSlot], 1),
						shape: s.shape, rowFrom: from, fusedRows: total}
				}
			}
		}
		permuted := func(heads int) func(*weightSpec) {
			return func(s *weightSpec) {
				if f.GGUFPermutedQK {
					s.ropeHeads = heads
				}
			}
		}
		qkvRows := qDim + 2*kvDim
		if !f.NoPreNorms {
			w(slotAttnNorm, "weight", []int{d}, &b.AttnNorm, norm)
		}
		// splitBy marks the axis a weight is divided along across devices.
		splitBy := func(sp split) func(*weightSpec) { return func(s *weightSpec) { s.split = sp } }
		w(slotQ, "weight", []int{qDim, d}, &b.Q, chain(fused(slotQ, slotQKV, f.FusedQKV, 0, qkvRows), permuted(c.NumHeads), splitBy(splitHeads)))
		w(slotK, "weight", []int{kvDim, d}, &b.K, chain(fused(slotK, slotQKV, f.FusedQKV, qDim, qkvRows), permuted(c.NumKVHeads), splitBy(splitKVHeads)))
		w(slotV, "weight", []int{kvDim, d}, &b.V, chain(fused(slotV, slotQKV, f.FusedQKV, qDim+kvDim, qkvRows), splitBy(splitKVHeads)))
		if c.AttnBias {
			w(slotQ, "bias", []int{qDim}, &b.QBias, chain(permuted(c.NumHeads), splitBy(splitHeads)))
			w(slotK, "bias", []int{kvDim}, &b.KBias, chain(permuted(c.NumKVHeads), splitBy(splitKVHeads)))
			w(slotV, "bias", []int{kvDim}, &b.VBias, splitBy(splitKVHeads))
		}
		switch f.QKNorm {
		case QKNormHead:
			w(slotQNorm, "weight", []int{hd}, &b.QNorm, norm)
			w(slotKNorm, "weight", []int{hd}, &b.KNorm, norm)
		case QKNormFull:
			w(slotQNorm, "weight", []int{qDim}, &b.QNorm, norm)
			w(slotKNorm, "weight", []int{kvDim}, &b.KNorm, norm)
		}
		w(slotO, "weight", []int{d, qDim}, &b.O, splitBy(splitHeadsIn))
		if c.OutBias {
			w(slotO, "bias", []int{d}, &b.OBias, nil)
		}
		if f.PostNorms {
			w(slotAttnPostNorm, "weight", []int{d}, &b.AttnPostNorm, norm)
		}
		if !f.NoPreNorms {
			w(slotMLPNorm, "weight", []int{d}, &b.MLPNorm, norm)
		}
		w(slotGate, "weight", []int{c.FFNDim, d}, &b.Gate, chain(fused(slotGate, slotGateUp, f.FusedGateUp, 0, 2*c.FFNDim), splitBy(splitFFN)))
		w(slotUp, "weight", []int{c.FFNDim, d}, &b.Up, chain(fused(slotUp, slotGateUp, f.FusedGateUp, c.FFNDim, 2*c.FFNDim), splitBy(splitFFN)))
		w(slotDown, "weight", []int{d, c.FFNDim}, &b.Down, splitBy(splitFFNIn))
		if c.MLPBias {
			w(slotGate, "bias", []int{c.FFNDim}, &b.GateBias, splitBy(splitFFN))
			w(slotUp, "bias", []int{c.FFNDim}, &b.UpBias, splitBy(splitFFN))
			w(slotDown, "bias", []int{d}, &b.DownBias, nil)
		}
		if f.PostNorms {
			w(slotMLPPostNorm, "weight", []int{d}, &b.MLPPostNorm, norm)
		}
	}
	fn(weightSpec{hf: "model.norm.weight", gguf: "output_norm.weight", shape: []int{d}, plusOne: f.NormPlusOne, norm: true}, &p.FinalNorm)
	if !c.TiedEmbeddings {
		fn(weightSpec{hf: "lm_head.weight", gguf: "output.weight", shape: []int{c.VocabSize, d}}, &p.LMHead)
	}
}

// chain applies spec modifiers in order.
func chain(mods ...func(*weightSpec)) func(*weightSpec) {
	return func(s *weightSpec) {
		for _, m := range mods {
			m(s)
		}
	}
}

// flat returns the weights in visit order.
func (p *Params[T]) flat(c *Config) []T {
	var out []T
	p.visit(c, func(_ weightSpec, v *T) { out = append(out, *v) })
	return out
}

// fromFlat fills p from values in visit order (the inverse of flat).
func fromFlat[T any](c *Config, values []T) *Params[T] {
	p := &Params[T]{}
	i := 0
	p.visit(c, func(_ weightSpec, v *T) { *v = values[i]; i++ })
	return p
}

// unpermuteRoPE undoes llama.cpp's convert_hf_to_gguf permutation of Q/K rows:
// GGUF row (h, j, k) for head h, j in [0, headDim/2), k in {0,1} holds
// Hugging Face row (h, k, j). cols is 1 for a bias.
func unpermuteRoPE(data []float32, heads, rows, cols int) []float32 {
	hd := rows / heads
	half := hd / 2
	out := make([]float32, len(data))
	for h := range heads {
		for j := range half {
			for k := range 2 {
				src := (h*hd + j*2 + k) * cols
				dst := (h*hd + k*half + j) * cols
				copy(out[dst:dst+cols], data[src:src+cols])
			}
		}
	}
	return out
}

func shapeString(dims []int) string {
	parts := make([]string, len(dims))
	for i, d := range dims {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
