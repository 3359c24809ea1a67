package models

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"

	"github.com/gomlx/go-huggingface/models/gguf"
)

// ggufReader reads a GGUF file's metadata strictly, like keyReader does
// config.json: every "<arch>." key is consumed, declared harmless, or
// reported.
type ggufReader struct {
	f    *gguf.File
	arch string
	seen map[string]bool
	err  error
}

func (k *ggufReader) fail(format string, args ...any) {
	if k.err == nil {
		k.err = fmt.Errorf("GGUF %s: "+format, append([]any{k.f.Path()}, args...)...)
	}
}

// get returns an "<arch>." key.
func (k *ggufReader) get(key string) (gguf.KeyValue, bool) {
	k.seen[key] = true
	return k.f.GetKeyValue(k.arch + "." + key)
}

func (k *ggufReader) has(key string) bool { _, ok := k.get(key); return ok }

func (k *ggufReader) num(key string, def int) int {
	kv, ok := k.get(key)
	if !ok {
		return def
	}
	if reflect.ValueOf(kv.Raw()).Kind() == reflect.Slice {
		k.fail("key %s.%s is an array (a per-layer value): refusalkit supports one value for all layers", k.arch, key)
	}
	return int(kv.Int64())
}

func (k *ggufReader) flt(key string, def float64) float64 {
	kv, ok := k.get(key)
	if !ok {
		return def
	}
	return kv.Float64()
}

func (k *ggufReader) str(key, def string) string {
	kv, ok := k.get(key)
	if !ok {
		return def
	}
	return kv.String()
}

func (k *ggufReader) ignore(keys ...string) {
	for _, key := range keys {
		k.seen[key] = true
	}
}

// unknown lists the "<arch>." keys nobody read.
func (k *ggufReader) unknown() []string {
	var out []string
	for _, kv := range k.f.KeyValues {
		if rest, ok := strings.CutPrefix(kv.Key, k.arch+"."); ok && !k.seen[rest] {
			out = append(out, kv.Key)
		}
	}
	sort.Strings(out)
	return out
}

// configFromGGUF reads the model config from a GGUF file's metadata, in
// llama.cpp's conventions (llama-model.cpp, convert_hf_to_gguf.py).
func configFromGGUF(f *gguf.File, name string) (Config, []string, error) {
	arch := f.Architecture()
	fam, err := familyFor(arch, true)
	if err != nil {
		return Config{}, nil, fmt.Errorf("GGUF %s: %w", f.Path(), err)
	}
	if kv, ok := f.GetKeyValue("split.count"); ok && kv.Int64() > 1 {
		return Config{}, nil, fmt.Errorf("GGUF %s is split in %d files: merge them with llama.cpp's gguf-split --merge and pass the merged file", f.Path(), kv.Int64())
	}
	k := &ggufReader{f: f, arch: arch, seen: map[string]bool{}}
	c := Config{Name: name, Architecture: fam.ModelTypes[0], family: fam}
	c.NumLayers = k.num("block_count", 0)
	c.DModel = k.num("embedding_length", 0)
	c.NumHeads = k.num("attention.head_count", 0)
	c.NumKVHeads = k.num("attention.head_count_kv", c.NumHeads)
	c.FFNDim = k.num("feed_forward_length", 0)
	c.ContextLength = k.num("context_length", 0)
	c.RMSNormEps = k.flt("attention.layer_norm_rms_epsilon", 0)
	if c.NumHeads > 0 {
		c.HeadDim = k.num("attention.key_length", c.DModel/c.NumHeads)
	}
	if v := k.num("attention.value_length", c.HeadDim); v != c.HeadDim {
		k.fail("value head size %d differs from key head size %d: refusalkit supports equal sizes", v, c.HeadDim)
	}
	tokens, _ := f.GetKeyValue("tokenizer.ggml.tokens")
	c.VocabSize = k.num("vocab_size", len(tokens.Strings()))
	if n := k.num("expert_count", 0); n > 0 {
		k.fail("mixture of %d experts is not supported: use a dense model", n)
	}
	k.ignore("expert_used_count")
	if kv, ok := k.get("attention.causal"); ok && !kv.Bool() {
		k.fail("%s.attention.causal = false (an embedding model): refusalkit runs causal decoders", arch)
	}
	k.ignore("rope.scaling.finetuned", "pooling_type", "tensor_data_layout")
	if kv, ok := k.get("attention.layer_norm_epsilon"); ok {
		k.fail("%s.attention.layer_norm_epsilon = %v (LayerNorm): refusalkit implements RMSNorm models", arch, kv.Float64())
	}
	c.RoPE = RoPE{Type: "default", Theta: k.flt("rope.freq_base", 10000), RotaryDim: k.num("rope.dimension_count", c.HeadDim)}
	switch t := k.str("rope.scaling.type", "none"); t {
	case "none", "":
	case "linear":
		if factor := k.flt("rope.scaling.factor", 1); factor != 1 {
			c.RoPE.Type, c.RoPE.Factor = "linear", factor
		}
	case "yarn":
		c.RoPE.Type, c.RoPE.Factor = "yarn", k.flt("rope.scaling.factor", 1)
		c.RoPE.OriginalMaxPositionEmbeddings = k.num("rope.scaling.original_context_length", 0)
		c.RoPE.AttentionFactor = k.flt("rope.scaling.attn_factor", 0)
		c.RoPE.BetaFast, c.RoPE.BetaSlow = k.flt("rope.scaling.yarn_beta_fast", 0), k.flt("rope.scaling.yarn_beta_slow", 0)
		if m := k.flt("rope.scaling.yarn_log_multiplier", 0); m != 0 {
			k.fail("%s.rope.scaling.yarn_log_multiplier = %v is not supported", arch, m)
		}
	default:
		k.fail("RoPE scaling %q is not supported: refusalkit reads none, linear and yarn from GGUF files (llama3 and longrope come as factor tensors)", t)
	}
	if w := k.num("attention.sliding_window", 0); w > 0 {
		c.SlidingWindow = w // the family's pattern says which layers slide
	}
	if fam.ggufKeys != nil {
		if err := fam.ggufKeys(k, &c); err != nil {
			return Config{}, nil, err
		}
	}
	// Per-frequency factors: llama3 scaling (rope_freqs) and Phi-3's
	// longrope (rope_factors_short; the long factors apply past the
	// original context only, where refusalkit stops).
	for _, t := range []string{"rope_freqs.weight", "rope_factors_short.weight"} {
		if _, ok := f.GetTensorInfo(t); ok {
			factors, err := readFloatTensor(f, t)
			if err != nil {
				return Config{}, nil, err
			}
			c.RoPE.FreqFactors = factors
		}
	}
	if _, ok := f.GetTensorInfo("rope_factors_long.weight"); ok {
		orig := k.num("rope.scaling.original_context_length", 0)
		if orig <= 0 {
			k.fail("rope_factors_long.weight without %s.rope.scaling.original_context_length", arch)
		}
		c.RoPE.AttentionFactor = k.flt("rope.scaling.attn_factor", 1)
		if c.ContextLength > orig {
			c.ContextLength = orig
			c.ContextNote = fmt.Sprintf("longrope: short-factor regime only (%d tokens)", orig)
		}
	}
	k.ignore("rope.scaling.original_context_length", "rope.scaling.attn_factor")
	// llama.cpp loads biases when the file has them: their presence is the setting.
	hasTensor := func(n string) bool { _, ok := f.GetTensorInfo(n); return ok }
	c.AttnBias = hasTensor("blk.0.attn_q.bias") || hasTensor("blk.0.attn_qkv.bias")
	c.OutBias = hasTensor("blk.0.attn_output.bias")
	c.MLPBias = hasTensor("blk.0.ffn_up.bias") || hasTensor("blk.0.ffn_down.bias")
	_, hasHead := f.GetTensorInfo("output.weight")
	c.TiedEmbeddings = !hasHead
	bos, eos := ggufTokenID(f, "tokenizer.ggml.bos_token_id"), ggufTokenID(f, "tokenizer.ggml.eos_token_id")
	c.BOS, c.EOS = bos, eos
	if kv, ok := f.GetKeyValue("tokenizer.ggml.add_bos_token"); ok {
		c.AddBOS = kv.Bool()
	}
	if k.err != nil {
		return Config{}, nil, k.err
	}
	var warnings []string
	for _, u := range k.unknown() {
		kv, _ := f.GetKeyValue(u)
		warnings = append(warnings, fmt.Sprintf("GGUF %s: key %s = %s is not known to refusalkit; it is ignored — check it does not change the model", f.Path(), u, clip(fmt.Sprint(kv.Raw()))))
	}
	return c, warnings, c.validate()
}

func ggufTokenID(f *gguf.File, key string) int32 {
	if kv, ok := f.GetKeyValue(key); ok {
		return int32(kv.Int64())
	}
	return -1
}

// readFloatTensor reads a small float tensor (RoPE factors) as float64.
func readFloatTensor(f *gguf.File, name string) ([]float64, error) {
	r, err := gguf.NewReader(f)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	t, err := r.ReadTensor(nil, name)
	if err != nil {
		return nil, fmt.Errorf("GGUF %s: read tensor %s: %v", f.Path(), name, err)
	}
	var out []float64
	t.ConstFlatData(func(flat any) {
		for _, v := range flat.([]float32) {
			out = append(out, float64(v))
		}
	})
	return out, nil
}

// Family-specific GGUF keys, as llama.cpp's llama-model.cpp reads them.

// readGemma2GGUF: soft-caps; llama.cpp derives the attention scale from the
// model size (query_pre_attn_scalar is not stored): 1/√(d_model/heads) for
// the 27B (46 layers), else 1/√head_dim.
func readGemma2GGUF(k *ggufReader, c *Config) error {
	c.AttnSoftcap = k.flt("attn_logit_softcapping", 50)
	c.FinalSoftcap = k.flt("final_logit_softcapping", 30)
	c.AttentionScale = gemmaAttentionScale(c, 46)
	return ggufPattern(k, c, 2)
}

// readGemma3GGUF: llama.cpp's Gemma 3 uses a local RoPE base of 10000
// without scaling on sliding layers, one layer in six global, and the
// attention scale rule of Gemma 2 (the 27B has 62 layers).
func readGemma3GGUF(k *ggufReader, c *Config) error {
	c.FinalSoftcap = k.flt("final_logit_softcapping", 0)
	c.AttnSoftcap = k.flt("attn_logit_softcapping", 0)
	c.AttentionScale = gemmaAttentionScale(c, 62)
	c.SlidingRoPE = &RoPE{Type: "default", Theta: k.flt("rope.freq_base_swa", 10000), RotaryDim: c.RoPE.RotaryDim}
	return ggufPattern(k, c, 6)
}

// gemmaAttentionScale is llama.cpp's rule for Gemma 2/3: 1/√(d_model/heads)
// for the 27B model (layers27B layers), else 1/√head_dim.
func gemmaAttentionScale(c *Config, layers27B int) float64 {
	if c.NumLayers == layers27B {
		return 1 / math.Sqrt(float64(c.DModel/c.NumHeads))
	}
	return 1 / math.Sqrt(float64(c.HeadDim))
}

// ggufPattern sets the layer types: every n-th layer full, the rest sliding
// (llama.cpp's set_swa_pattern), or the file's own sliding_window_pattern.
func ggufPattern(k *ggufReader, c *Config, n int) error {
	if kv, ok := k.get("attention.sliding_window_pattern"); ok {
		if bs, isBools := kv.Raw().([]bool); isBools {
			if len(bs) != c.NumLayers {
				return fmt.Errorf("GGUF %s: sliding_window_pattern has %d entries for %d layers", k.f.Path(), len(bs), c.NumLayers)
			}
			c.Layers = make([]Layer, c.NumLayers)
			for i, sliding := range bs {
				c.Layers[i].Type = FullAttention
				if sliding {
					c.Layers[i].Type = SlidingAttention
				}
			}
			return nil
		}
		n = int(kv.Int64())
	}
	c.Layers = make([]Layer, c.NumLayers)
	for i := range c.Layers {
		c.Layers[i].Type = slidingEvery(i, n)
		if n <= 1 {
			c.Layers[i].Type = SlidingAttention
		}
	}
	return nil
}

// readGraniteGGUF: Granite's four multipliers.
func readGraniteGGUF(k *ggufReader, c *Config) error {
	c.EmbedScale = k.flt("embedding_scale", 1)
	c.ResidualScale = k.flt("residual_scale", 1)
	c.AttentionScale = k.flt("attention.scale", 1)
	c.LogitsDivisor = k.flt("logit_scale", 1)
	return nil
}

// readSmolLM3GGUF: llama.cpp's SmolLM3 skips RoPE on every fourth layer.
func readSmolLM3GGUF(k *ggufReader, c *Config) error {
	step := k.num("no_rope_layer_step", 4)
	c.Layers = make([]Layer, c.NumLayers)
	for i := range c.Layers {
		c.Layers[i] = Layer{Type: FullAttention, NoRoPE: (i+1)%step == 0}
	}
	return nil
}
