package models

import (
	"fmt"
	"strings"
)

// Params holds one value per weight of the model. T is *tensors.Tensor when
// the weights are loaded, and *graph.Node inside a graph: the same struct
// names the weights in both places, so the graph code reads like the model.
type Params[T any] struct {
	Embed     T // [vocab, d_model]
	Blocks    []BlockParams[T]
	FinalNorm T // [d_model]
	LMHead    T // [vocab, d_model]; absent (zero) when the embeddings are tied.
}

// BlockParams are the weights of one transformer block, in Hugging Face's
// [out_features, in_features] layout.
type BlockParams[T any] struct {
	AttnNorm            T // [d_model]
	Q                   T // [n_heads*head_dim, d_model]
	K, V                T // [n_kv_heads*head_dim, d_model]
	QBias, KBias, VBias T // [n_heads*head_dim], [n_kv_heads*head_dim]; only with Config.QKVBias
	O                   T // [d_model, n_heads*head_dim]
	MLPNorm             T // [d_model]
	Gate, Up            T // [ffn, d_model]
	Down                T // [d_model, ffn]
}

// weightSpec names one weight in both checkpoint formats, with its expected shape.
type weightSpec struct {
	hf, gguf string
	shape    []int
	// ropeHeads > 0 marks Q and K projections: llama.cpp's converter permutes
	// their rows for its interleaved RoPE, so GGUF rows are un-permuted on load.
	ropeHeads int
}

// visit calls fn for every weight the config needs, in a fixed order that
// is also the order of the compiled graph's weight inputs.
func (p *Params[T]) visit(c *Config, fn func(s weightSpec, v *T)) {
	d, hd := c.DModel, c.HeadDim
	qDim, kvDim := c.NumHeads*hd, c.NumKVHeads*hd
	fn(weightSpec{"model.embed_tokens.weight", "token_embd.weight", []int{c.VocabSize, d}, 0}, &p.Embed)
	if len(p.Blocks) != c.NumLayers {
		p.Blocks = make([]BlockParams[T], c.NumLayers)
	}
	for i := range p.Blocks {
		b := &p.Blocks[i]
		hf := fmt.Sprintf("model.layers.%d.", i)
		gg := fmt.Sprintf("blk.%d.", i)
		w := func(hfName, ggName string, shape []int, ropeHeads int, v *T) {
			fn(weightSpec{hf + hfName, gg + ggName, shape, ropeHeads}, v)
		}
		w("input_layernorm.weight", "attn_norm.weight", []int{d}, 0, &b.AttnNorm)
		w("self_attn.q_proj.weight", "attn_q.weight", []int{qDim, d}, c.NumHeads, &b.Q)
		w("self_attn.k_proj.weight", "attn_k.weight", []int{kvDim, d}, c.NumKVHeads, &b.K)
		w("self_attn.v_proj.weight", "attn_v.weight", []int{kvDim, d}, 0, &b.V)
		if c.QKVBias {
			w("self_attn.q_proj.bias", "attn_q.bias", []int{qDim}, c.NumHeads, &b.QBias)
			w("self_attn.k_proj.bias", "attn_k.bias", []int{kvDim}, c.NumKVHeads, &b.KBias)
			w("self_attn.v_proj.bias", "attn_v.bias", []int{kvDim}, 0, &b.VBias)
		}
		w("self_attn.o_proj.weight", "attn_output.weight", []int{d, qDim}, 0, &b.O)
		w("post_attention_layernorm.weight", "ffn_norm.weight", []int{d}, 0, &b.MLPNorm)
		w("mlp.gate_proj.weight", "ffn_gate.weight", []int{c.FFNDim, d}, 0, &b.Gate)
		w("mlp.up_proj.weight", "ffn_up.weight", []int{c.FFNDim, d}, 0, &b.Up)
		w("mlp.down_proj.weight", "ffn_down.weight", []int{d, c.FFNDim}, 0, &b.Down)
	}
	fn(weightSpec{"model.norm.weight", "output_norm.weight", []int{d}, 0}, &p.FinalNorm)
	if !c.TiedEmbeddings {
		fn(weightSpec{"lm_head.weight", "output.weight", []int{c.VocabSize, d}, 0}, &p.LMHead)
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
