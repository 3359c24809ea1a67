package models

import (
	"fmt"
	"slices"
	"sort"
)

// A Family declares what one architecture does differently from the plain
// Llama decoder; every zero value means "as Llama". It is the only place a
// family is described: the config readers, the weight names and the graph
// all read it, so adding a family is adding one entry to families (and a
// reference checkpoint to tools/reference/make_families.py).
type Family struct {
	// Names: the Hugging Face model_type values and the llama.cpp
	// general.architecture values that select this family.
	ModelTypes []string
	GGUFArchs  []string

	// Block layout.
	NoPreNorms bool   // no norm before attention and MLP (OLMo 2 normalises the outputs only)
	PostNorms  bool   // a norm on the attention and MLP outputs, before the residual add (Gemma 2/3, OLMo 2)
	QKNorm     QKNorm // RMSNorm on queries and keys before RoPE
	// FusedQKV, FusedGateUp: the checkpoint stores q|k|v and gate|up as one
	// matrix (Phi-3); they are split into the usual weights on load.
	FusedQKV, FusedGateUp bool

	// Numerics.
	Activation string // the MLP's default activation
	// ActivationKey names the config.json key of the activation (""
	// hidden_act; Gemma 2/3 read hidden_activation). LegacyGelu: transformers
	// reads "gelu" as the tanh approximation (Gemma 1's GemmaConfig does).
	ActivationKey string
	LegacyGelu    bool
	NormPlusOne   bool // Hugging Face stores norm weights w and applies (1 + w) (Gemma); llama.cpp stores 1 + w
	// NormMulFloat32: in half precision the RMSNorm multiplies by its weight
	// in float32 before casting back (OLMo 2); Llama casts back first.
	// Gemma's NormPlusOne does the former too.
	NormMulFloat32  bool
	ScaleEmbeddings bool // embeddings × √d_model, rounded to float32 (Gemma)
	QKVBias         bool // q, k and v projections always carry biases (Qwen2)
	// BiasKeys are the config.json bias keys the family's transformers config
	// reads: attention_bias (q, k, v and o) and mlp_bias; nil: both (Llama).
	BiasKeys []string

	// Defaults of the transformers config class for keys a config.json may omit.
	TiedDefault    bool    // tie_word_embeddings
	DefaultTheta   float64 // rope_theta (0: 10000)
	DefaultEps     float64 // rms_norm_eps (0: 1e-6)
	DefaultHeadDim int     // head_dim (0: d_model / n_heads)
	DefaultOrigMax int     // original_max_position_embeddings outside the RoPE dict (Phi-3)
	// WindowKey: the family reads sliding_window (DefaultWindow when absent);
	// LayerTypes: its config class reads layer_types.
	WindowKey, LayerTypes bool
	DefaultWindow         int
	// SlidingRoPEKey names the legacy key of the sliding layers' RoPE base
	// (Gemma 3's rope_local_base_freq); legacy rope_scaling then applies to
	// full-attention layers only.
	SlidingRoPEKey string
	// DefaultPattern gives the default attention type of layer i when
	// config.json has no layer_types (nil: every layer full).
	DefaultPattern func(i int) LayerType

	// GGUFPermutedQK: llama.cpp's converter permutes the rows of Q and K for
	// its interleaved RoPE (LlamaModel.permute); they are un-permuted on load.
	GGUFPermutedQK bool
	// GGUFTiedHead: llama.cpp's graph for the architecture reads the LM head
	// from token_embd.weight, whatever else the file holds (Gemma): a GGUF of
	// it cannot carry an untied head.
	GGUFTiedHead bool

	// hfNames overrides the Hugging Face tensor names of block weights
	// (keys: the slot names of weights.go).
	hfNames map[string]string
	// hfKeys reads the family's own config.json keys.
	hfKeys func(k *keyReader, c *Config) error
	// ggufKeys reads the family's own GGUF metadata keys.
	ggufKeys func(k *ggufReader, c *Config) error
}

// QKNorm says where queries and keys are normalised.
type QKNorm int

const (
	NoQKNorm   QKNorm = iota
	QKNormHead        // per head, over head_dim (Qwen3, Gemma 3)
	QKNormFull        // over the whole projection, before the split into heads (OLMo 2)
)

// LayerType is a layer's attention: full causal, or a causal sliding window.
type LayerType string

const (
	FullAttention    LayerType = "full_attention"
	SlidingAttention LayerType = "sliding_attention"
)

// The bias keys a family's config reads (see Family.BiasKeys).
var (
	noBiasKeys  = []string{}
	attnBiasKey = []string{"attention_bias"}
)

// gemmaNorms are the Hugging Face names of Gemma 2/3's four norms per block.
var gemmaNorms = map[string]string{
	slotAttnNorm: "input_layernorm", slotAttnPostNorm: "post_attention_layernorm",
	slotMLPNorm: "pre_feedforward_layernorm", slotMLPPostNorm: "post_feedforward_layernorm",
}

// families is the table of supported architectures.
var families = []*Family{
	{ModelTypes: []string{"llama"}, GGUFArchs: []string{"llama"}, GGUFPermutedQK: true},
	{ModelTypes: []string{"mistral"}, BiasKeys: noBiasKeys, GGUFArchs: []string{"mistral"}, GGUFPermutedQK: true,
		WindowKey: true, DefaultWindow: 4096},
	{ModelTypes: []string{"qwen2"}, BiasKeys: noBiasKeys, GGUFArchs: []string{"qwen2"}, QKVBias: true, LayerTypes: true,
		WindowKey: true, DefaultWindow: 4096, hfKeys: readQwenWindow},
	{ModelTypes: []string{"qwen3"}, BiasKeys: attnBiasKey, GGUFArchs: []string{"qwen3"}, QKNorm: QKNormHead, LayerTypes: true, DefaultHeadDim: 128,
		WindowKey: true, DefaultWindow: 4096, hfKeys: readQwenWindow},
	{ModelTypes: []string{"gemma"}, BiasKeys: attnBiasKey, GGUFArchs: []string{"gemma"}, Activation: "gelu_pytorch_tanh", LegacyGelu: true,
		NormPlusOne: true, ScaleEmbeddings: true, TiedDefault: true, DefaultHeadDim: 256, GGUFTiedHead: true},
	{ModelTypes: []string{"gemma2"}, BiasKeys: attnBiasKey, GGUFArchs: []string{"gemma2"}, Activation: "gelu_pytorch_tanh", ActivationKey: "hidden_activation",
		NormPlusOne: true, ScaleEmbeddings: true, TiedDefault: true, PostNorms: true, hfNames: gemmaNorms, GGUFTiedHead: true,
		DefaultHeadDim: 256, WindowKey: true, DefaultWindow: 4096, LayerTypes: true,
		DefaultPattern: func(i int) LayerType { return slidingEvery(i, 2) },
		hfKeys:         readGemma2, ggufKeys: readGemma2GGUF},
	{ModelTypes: []string{"gemma3_text"}, BiasKeys: attnBiasKey, GGUFArchs: []string{"gemma3"}, Activation: "gelu_pytorch_tanh", ActivationKey: "hidden_activation",
		NormPlusOne: true, ScaleEmbeddings: true, TiedDefault: true, PostNorms: true, QKNorm: QKNormHead, GGUFTiedHead: true,
		hfNames: gemmaNorms, DefaultTheta: 1e6, DefaultHeadDim: 256, WindowKey: true, DefaultWindow: 4096, LayerTypes: true,
		SlidingRoPEKey: "rope_local_base_freq",
		DefaultPattern: func(i int) LayerType { return slidingEvery(i, 6) },
		hfKeys:         readGemma3, ggufKeys: readGemma3GGUF},
	{ModelTypes: []string{"phi3"}, BiasKeys: noBiasKeys, GGUFArchs: []string{"phi3"}, FusedQKV: true, FusedGateUp: true,
		hfNames:    map[string]string{slotQKV: "self_attn.qkv_proj", slotGateUp: "mlp.gate_up_proj"},
		DefaultEps: 1e-5, DefaultOrigMax: 4096, WindowKey: true},
	{ModelTypes: []string{"olmo2"}, BiasKeys: attnBiasKey, GGUFArchs: []string{"olmo2"}, NoPreNorms: true, PostNorms: true, QKNorm: QKNormFull,
		DefaultEps: 1e-5, NormMulFloat32: true,
		hfNames: map[string]string{slotAttnPostNorm: "post_attention_layernorm", slotMLPPostNorm: "post_feedforward_layernorm"}},
	{ModelTypes: []string{"granite"}, GGUFArchs: []string{"granite"}, GGUFPermutedQK: true, hfKeys: readGranite, ggufKeys: readGraniteGGUF},
	{ModelTypes: []string{"smollm3"}, GGUFArchs: []string{"smollm3"}, GGUFPermutedQK: true, TiedDefault: true, DefaultTheta: 2e6,
		WindowKey: true, LayerTypes: true, hfKeys: readSmolLM3, ggufKeys: readSmolLM3GGUF},
}

// slidingEvery: every n-th layer (1-based) is full, the others slide.
func slidingEvery(i, n int) LayerType {
	if (i+1)%n == 0 {
		return FullAttention
	}
	return SlidingAttention
}

// familyFor looks a family up by model_type (hf) or GGUF architecture.
func familyFor(name string, gguf bool) (*Family, error) {
	for _, f := range families {
		names := f.ModelTypes
		if gguf {
			names = f.GGUFArchs
		}
		if slices.Contains(names, name) {
			return f, nil
		}
	}
	return nil, fmt.Errorf("unsupported architecture %q: refusalkit runs %v; use a model of one of those families", name, SupportedArchitectures())
}

// SupportedArchitectures lists the Hugging Face model_type values this package runs.
func SupportedArchitectures() []string {
	var out []string
	for _, f := range families {
		out = append(out, f.ModelTypes...)
	}
	sort.Strings(out)
	return out
}

// hfName is the Hugging Face name of a block weight slot in this family.
func (f *Family) hfName(slot string) string {
	if n, ok := f.hfNames[slot]; ok {
		return n
	}
	return llamaHFNames[slot]
}
