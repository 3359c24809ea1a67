package models

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
)

// keyReader reads config.json strictly: every key is consumed by a reader,
// declared as not affecting the forward pass, or reported. The first bad
// value is kept in err; later reads return zero values.
type keyReader struct {
	path string
	raw  map[string]json.RawMessage
	seen map[string]bool
	err  error
}

func newKeyReader(path string, raw map[string]json.RawMessage) *keyReader {
	return &keyReader{path: path, raw: raw, seen: map[string]bool{}}
}

// has reports whether the key is present and not null.
func (k *keyReader) has(name string) bool {
	v, ok := k.raw[name]
	return ok && string(v) != "null"
}

func (k *keyReader) fail(format string, args ...any) {
	if k.err == nil {
		k.err = fmt.Errorf("model config %s: "+format, append([]any{k.path}, args...)...)
	}
}

// decode reads a present key into v; it reports whether the key was there.
func (k *keyReader) decode(name string, v any) bool {
	k.seen[name] = true
	if !k.has(name) {
		return false
	}
	if err := json.Unmarshal(k.raw[name], v); err != nil {
		k.fail("key %q = %s is not a %T (%v): fix config.json", name, k.raw[name], v, err)
		return false
	}
	return true
}

func (k *keyReader) int(name string, def int) int {
	var f float64
	if !k.decode(name, &f) {
		return def
	}
	if f != math.Trunc(f) {
		k.fail("key %q = %v is not an integer: fix config.json", name, f)
	}
	return int(f)
}

func (k *keyReader) float(name string, def float64) float64 {
	var f float64
	if !k.decode(name, &f) {
		return def
	}
	return f
}

// optFloat is float for keys where null means "off" (0) and absence the default.
func (k *keyReader) optFloat(name string, def float64) float64 {
	if _, present := k.raw[name]; present && !k.has(name) {
		k.seen[name] = true
		return 0
	}
	return k.float(name, def)
}

func (k *keyReader) optInt(name string, def int) int { return int(k.optFloat(name, float64(def))) }

func (k *keyReader) bool(name string, def bool) bool {
	var b bool
	if !k.decode(name, &b) {
		return def
	}
	return b
}

func (k *keyReader) str(name, def string) string {
	var s string
	if !k.decode(name, &s) {
		return def
	}
	return s
}

// ignore marks keys known not to change the forward pass.
func (k *keyReader) ignore(names ...string) {
	for _, n := range names {
		k.seen[n] = true
	}
}

// refuseUnless fails when a present key's value is not one of allowed
// (compared as JSON text, null counting as absent).
func (k *keyReader) refuseUnless(name, why string, allowed ...string) {
	k.seen[name] = true
	if !k.has(name) {
		return
	}
	if !slices.Contains(allowed, strings.TrimSpace(string(k.raw[name]))) {
		k.fail("key %q = %s is not supported (%s)", name, k.raw[name], why)
	}
}

// unknown lists the keys nobody read or declared.
func (k *keyReader) unknown() []string {
	var out []string
	for n := range k.raw {
		if !k.seen[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// notForward are config.json keys that do not change the forward pass at
// inference: training, generation defaults and bookkeeping.
var notForward = []string{
	"architectures", "transformers_version", "torch_dtype", "dtype", "use_cache", "initializer_range",
	"pad_token_id", "sep_token_id", "decoder_start_token_id", "attention_dropout", "hidden_dropout",
	"embedding_dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop", "_name_or_path", "output_attentions",
	"output_hidden_states", "return_dict", "use_return_dict", "is_decoder", "is_encoder_decoder",
	"add_cross_attention", "tie_encoder_decoder", "cross_attention_hidden_size", "tokenizer_class",
	"id2label", "label2id", "problem_type", "finetuning_task", "prefix", "task_specific_params",
	"torchscript", "pruned_heads", "chunk_size_feed_forward", "tf_legacy_loss", "auto_map",
	"_attn_implementation_autoset", "attn_implementation", "cache_implementation", "model_max_length",
	// generation defaults that old configs carry
	"max_length", "min_length", "do_sample", "early_stopping", "num_beams", "num_beam_groups",
	"diversity_penalty", "temperature", "top_k", "top_p", "typical_p", "repetition_penalty",
	"length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids",
	"num_return_sequences", "output_scores", "return_dict_in_generate", "forced_bos_token_id",
	"forced_eos_token_id", "remove_invalid_values", "exponential_decay_length_penalty",
	"suppress_tokens", "begin_suppress_tokens",
	// pretraining_tp > 1 splits the projections into slices and sums them: the same product
	"pretraining_tp",
}

// configFromHF reads a Hugging Face config.json. warnings collects keys it
// does not know (they are reported, not silently dropped).
func configFromHF(path, name string) (Config, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, nil, fmt.Errorf("read model config: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Config{}, nil, fmt.Errorf("model config %s is not valid JSON (%v): re-download the model folder", path, err)
	}
	k := newKeyReader(path, raw)
	var top *keyReader // the multimodal wrapper, when the text model is nested
	if mt := k.str("model_type", ""); mt == "gemma3" {
		// Gemma3ForConditionalGeneration: the language model is text_config;
		// the vision tower and its keys are not used.
		var text map[string]json.RawMessage
		if !k.decode("text_config", &text) {
			return Config{}, nil, fmt.Errorf("model config %s: model_type gemma3 without a text_config: re-download the model folder", path)
		}
		k.ignore(notForward...)
		k.ignore("vision_config", "mm_tokens_per_image", "boi_token_index", "eoi_token_index", "image_token_index",
			"image_token_id", "boi_token_id", "eoi_token_id", "vision_soft_tokens_per_image")
		top = k
		if _, ok := text["model_type"]; !ok {
			text["model_type"] = json.RawMessage(`"gemma3_text"`)
		}
		k = newKeyReader(path+" text_config", text)
	}
	mt := k.str("model_type", "")
	fam, err := familyFor(mt, false)
	if err != nil {
		return Config{}, nil, fmt.Errorf("model config %s: %w", path, err)
	}
	c := Config{Name: name, Architecture: mt, family: fam}
	k.ignore(notForward...)
	c.NumLayers = k.int("num_hidden_layers", 0)
	c.DModel = k.int("hidden_size", 0)
	c.NumHeads = k.int("num_attention_heads", 0)
	c.NumKVHeads = k.int("num_key_value_heads", c.NumHeads)
	if c.NumHeads > 0 {
		def := c.DModel / c.NumHeads
		if fam.DefaultHeadDim > 0 {
			def = fam.DefaultHeadDim
		}
		c.HeadDim = k.int("head_dim", def)
	}
	c.FFNDim = k.int("intermediate_size", 0)
	c.VocabSize = k.int("vocab_size", 0)
	c.ContextLength = k.int("max_position_embeddings", 0)
	c.RMSNormEps = k.float("rms_norm_eps", 1e-6)
	if fam.DefaultEps > 0 && !k.has("rms_norm_eps") {
		c.RMSNormEps = fam.DefaultEps
	}
	// The activation key is the one the family's transformers config reads
	// (the other is ignored there too, so it is here).
	actKey, otherKey := "hidden_act", "hidden_activation"
	if fam.ActivationKey != "" {
		actKey, otherKey = fam.ActivationKey, "hidden_act"
	}
	c.Activation = k.str(actKey, fam.Activation)
	k.ignore(otherKey)
	if fam.LegacyGelu && c.Activation == "gelu" {
		c.Activation = "gelu_pytorch_tanh" // GemmaConfig: "gelu" is a legacy value meant as the tanh approximation
	}
	c.TiedEmbeddings = k.bool("tie_word_embeddings", fam.TiedDefault)
	if top != nil {
		c.TiedEmbeddings = top.bool("tie_word_embeddings", c.TiedEmbeddings)
	}
	c.BOS, c.EOS = firstTokenID(raw["bos_token_id"]), firstTokenID(raw["eos_token_id"])
	if top == nil {
		k.ignore("bos_token_id", "eos_token_id")
	} else {
		if c.BOS < 0 {
			c.BOS = firstTokenID(k.raw["bos_token_id"])
		}
		if c.EOS < 0 {
			c.EOS = firstTokenID(k.raw["eos_token_id"])
		}
		k.ignore("bos_token_id", "eos_token_id")
		top.ignore("bos_token_id", "eos_token_id")
	}
	// Only the bias keys the family's transformers config reads: another
	// family's key is unknown there (ignored, and warned about here).
	reads := func(key string) bool { return fam.BiasKeys == nil || slices.Contains(fam.BiasKeys, key) }
	if reads("attention_bias") {
		c.AttnBias = k.bool("attention_bias", false)
		c.OutBias = c.AttnBias
	}
	if reads("mlp_bias") {
		c.MLPBias = k.bool("mlp_bias", false)
	}
	k.refuseUnless("quantization_config", "quantized weights: give a float16, bfloat16 or float32 checkpoint, or its GGUF")
	k.refuseUnless("use_bidirectional_attention", "bidirectional attention is not causal decoding", "false")

	readLayers(k, &c)
	readRoPE(k, &c)
	if fam.hfKeys != nil {
		if err := fam.hfKeys(k, &c); err != nil {
			return Config{}, nil, err
		}
	}
	if top != nil {
		top.refuseUnless("quantization_config", "quantized weights: give a float16, bfloat16 or float32 checkpoint, or its GGUF")
		if top.err != nil {
			return Config{}, nil, top.err
		}
	}
	if k.err != nil {
		return Config{}, nil, k.err
	}
	var warnings []string
	for _, r := range []*keyReader{top, k} {
		if r == nil {
			continue
		}
		for _, u := range r.unknown() {
			warnings = append(warnings, fmt.Sprintf("%s: key %q = %s is not known to refusalkit; it is ignored — check it does not change the model", r.path, u, clip(string(r.raw[u]))))
		}
	}
	return c, warnings, c.validate()
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// readLayers reads the per-layer attention types and the sliding window:
// layer_types when config.json has it, else the family's default pattern.
func readLayers(k *keyReader, c *Config) {
	var types []LayerType
	if c.family.LayerTypes && k.decode("layer_types", &types) && len(types) != c.NumLayers {
		k.fail("key \"layer_types\" has %d entries for %d layers: fix config.json", len(types), c.NumLayers)
		return
	}
	if types == nil && c.family.DefaultPattern != nil {
		pattern := c.family.DefaultPattern
		if k.has("sliding_window_pattern") { // Gemma 3's older key
			n := k.int("sliding_window_pattern", 6)
			pattern = func(i int) LayerType { return slidingEvery(i, n) }
		}
		for i := range c.NumLayers {
			types = append(types, pattern(i))
		}
	}
	// _sliding_window_pattern: transformers 5 saves the pattern it derived layer_types from.
	k.ignore("sliding_window_pattern", "_sliding_window_pattern")
	if c.family.WindowKey {
		c.SlidingWindow = k.optInt("sliding_window", c.family.DefaultWindow)
	}
	if types == nil {
		return // validate() decides: all full, or all sliding with a window (Mistral)
	}
	c.Layers = make([]Layer, c.NumLayers)
	for i, t := range types {
		if t != FullAttention && t != SlidingAttention {
			k.fail("layer %d has attention type %q: refusalkit implements full_attention and sliding_attention", i, t)
		}
		c.Layers[i].Type = t
	}
}

// readRoPE reads the rotary embedding: transformers 5's rope_parameters
// (one dict, or one per layer type), or the legacy rope_theta and
// rope_scaling keys.
func readRoPE(k *keyReader, c *Config) {
	theta := k.float("rope_theta", c.family.DefaultTheta)
	if theta == 0 {
		theta = 10000
	}
	partial := k.float("partial_rotary_factor", 1)
	origMax := k.int("original_max_position_embeddings", c.family.DefaultOrigMax) // Phi-3 keeps it outside the RoPE dict
	var params map[string]json.RawMessage
	if !k.decode("rope_parameters", &params) {
		k.decode("rope_scaling", &params)
	}
	k.ignore("rope_scaling")
	parse := func(name string, dict map[string]json.RawMessage, def float64) *RoPE {
		r := &RoPE{Theta: def}
		sub := newKeyReader(k.path+" "+name, dict)
		r.Type = sub.str("rope_type", sub.str("type", "default"))
		r.Theta = sub.float("rope_theta", r.Theta)
		r.RotaryDim = int(float64(c.HeadDim) * sub.float("partial_rotary_factor", partial))
		r.Factor = sub.float("factor", 0)
		r.LowFreqFactor = sub.float("low_freq_factor", 0)
		r.HighFreqFactor = sub.float("high_freq_factor", 0)
		r.OriginalMaxPositionEmbeddings = sub.int("original_max_position_embeddings", 0)
		if origMax > 0 { // transformers gives the top-level key priority
			r.OriginalMaxPositionEmbeddings = origMax
		}
		r.AttentionFactor = sub.float("attention_factor", 0)
		r.BetaFast, r.BetaSlow = sub.float("beta_fast", 0), sub.float("beta_slow", 0)
		r.NoTruncate = !sub.bool("truncate", true)
		mscale, mscaleAll := sub.float("mscale", 0), sub.float("mscale_all_dim", 0)
		r.ShortFactor = nil
		var long []float64
		sub.decode("short_factor", &r.ShortFactor)
		sub.decode("long_factor", &long)
		switch r.Type {
		case "yarn", "longrope", "llama3":
			if r.OriginalMaxPositionEmbeddings == 0 {
				r.OriginalMaxPositionEmbeddings = c.ContextLength
			}
		}
		switch r.Type {
		case "yarn":
			if r.Factor == 0 && r.OriginalMaxPositionEmbeddings > 0 {
				r.Factor = float64(c.ContextLength) / float64(r.OriginalMaxPositionEmbeddings)
			}
			if r.AttentionFactor == 0 && mscale != 0 && mscaleAll != 0 {
				m := func(s, ms float64) float64 {
					if s <= 1 {
						return 1
					}
					return 0.1*ms*math.Log(s) + 1
				}
				r.AttentionFactor = m(r.Factor, mscale) / m(r.Factor, mscaleAll)
			}
		case "longrope":
			factor := r.Factor
			if factor == 0 {
				factor = float64(c.ContextLength) / float64(r.OriginalMaxPositionEmbeddings)
			}
			if r.AttentionFactor == 0 {
				r.AttentionFactor = 1
				if factor > 1 {
					r.AttentionFactor = math.Sqrt(1 + math.Log(factor)/math.Log(float64(r.OriginalMaxPositionEmbeddings)))
				}
			}
		}
		if sub.err != nil {
			k.fail("%v", sub.err)
		}
		for _, u := range sub.unknown() {
			k.fail("RoPE parameter %q = %s is not supported: refusalkit implements the keys of transformers' default, linear, dynamic, yarn, llama3 and longrope RoPE", u, clip(string(dict[u])))
		}
		return r
	}
	_, nested := params[string(FullAttention)]
	_, nestedSliding := params[string(SlidingAttention)]
	switch {
	case nested || nestedSliding:
		var full, sliding map[string]json.RawMessage
		_ = json.Unmarshal(params[string(FullAttention)], &full)
		_ = json.Unmarshal(params[string(SlidingAttention)], &sliding)
		for key := range params {
			if key != string(FullAttention) && key != string(SlidingAttention) {
				k.fail("rope_parameters has an entry for layer type %q: refusalkit implements full_attention and sliding_attention", key)
			}
		}
		c.RoPE = *parse("rope_parameters.full_attention", full, theta)
		local := theta
		if key := c.family.SlidingRoPEKey; key != "" {
			local = k.float(key, 10000)
		}
		c.SlidingRoPE = parse("rope_parameters.sliding_attention", sliding, local)
	default:
		c.RoPE = *parse("rope_parameters", params, theta)
		if c.family.SlidingRoPEKey != "" { // Gemma 3's legacy keys: scaling on global layers only
			c.SlidingRoPE = &RoPE{Type: "default", Theta: k.float(c.family.SlidingRoPEKey, 10000),
				RotaryDim: c.RoPE.RotaryDim}
		}
	}
}

// firstTokenID reads a token id that config.json may give as a number or a list.
func firstTokenID(raw json.RawMessage) int32 {
	var one int32
	if json.Unmarshal(raw, &one) == nil && len(raw) > 0 && string(raw) != "null" {
		return one
	}
	var many []int32
	if json.Unmarshal(raw, &many) == nil && len(many) > 0 {
		return many[0]
	}
	return -1
}

// Family-specific config.json keys.

// readQwenWindow: Qwen2/3 slide only with use_sliding_window, from layer
// max_window_layers on, unless layer_types says otherwise.
func readQwenWindow(k *keyReader, c *Config) error {
	use := k.bool("use_sliding_window", false)
	from := k.int("max_window_layers", c.NumLayers)
	if !use {
		c.SlidingWindow = 0
		if c.Layers != nil {
			for i := range c.Layers {
				c.Layers[i].Type = FullAttention
			}
		}
		return nil
	}
	if c.Layers == nil && c.SlidingWindow > 0 {
		c.Layers = make([]Layer, c.NumLayers)
		for i := range c.Layers {
			c.Layers[i].Type = FullAttention
			if i >= from {
				c.Layers[i].Type = SlidingAttention
			}
		}
	}
	return nil
}

func readGemma2(k *keyReader, c *Config) error {
	readGemmaScales(k, c, 50, 30)
	return nil
}

func readGemma3(k *keyReader, c *Config) error {
	readGemmaScales(k, c, 0, 0)
	return nil
}

// readGemmaScales: query_pre_attn_scalar and the two soft-caps (defaults of
// Gemma2Config / Gemma3TextConfig when a key is absent; null turns one off).
func readGemmaScales(k *keyReader, c *Config, attnCap, finalCap float64) {
	c.AttentionScale = 1 / math.Sqrt(k.float("query_pre_attn_scalar", 256))
	c.AttnSoftcap = k.optFloat("attn_logit_softcapping", attnCap)
	c.FinalSoftcap = k.optFloat("final_logit_softcapping", finalCap)
}

// readGranite: Granite's four multipliers.
func readGranite(k *keyReader, c *Config) error {
	c.EmbedScale = k.float("embedding_multiplier", 1)
	c.ResidualScale = k.float("residual_multiplier", 1)
	c.AttentionScale = k.float("attention_multiplier", 1)
	c.LogitsDivisor = k.float("logits_scaling", 1)
	return nil
}

// readSmolLM3: no_rope_layers[i] = 0 turns RoPE off in layer i.
func readSmolLM3(k *keyReader, c *Config) error {
	interval := k.int("no_rope_layer_interval", 4)
	var use []int
	if !k.decode("no_rope_layers", &use) {
		for i := range c.NumLayers {
			u := 1
			if (i+1)%interval == 0 {
				u = 0
			}
			use = append(use, u)
		}
	}
	if len(use) != c.NumLayers {
		return fmt.Errorf("model config %s: no_rope_layers has %d entries for %d layers: fix config.json", k.path, len(use), c.NumLayers)
	}
	useSliding := k.bool("use_sliding_window", false)
	k.ignore("max_window_layers")
	if c.Layers == nil {
		c.Layers = make([]Layer, c.NumLayers)
		for i := range c.Layers {
			c.Layers[i].Type = FullAttention
			if useSliding && c.SlidingWindow > 0 && use[i] == 0 {
				c.Layers[i].Type = SlidingAttention
			}
		}
	}
	if !useSliding {
		for i := range c.Layers {
			if c.Layers[i].Type == SlidingAttention {
				c.Layers[i].Type = FullAttention
			}
		}
	}
	for i, u := range use {
		c.Layers[i].NoRoPE = u == 0
	}
	return nil
}
