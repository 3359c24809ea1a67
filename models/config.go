// Package models runs decoder-only chat models in GoMLX with the residual
// stream open for capture and intervention.
//
// One block loop serves every supported family (family.go declares what
// differs between them); the numbers — layer count, widths, RoPE, windows,
// scales — are read from the checkpoint's own metadata, config.json or GGUF
// keys, never guessed from the model's name. A key or tensor that changes
// the computation is either implemented or refused with an error naming it.
package models

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
)

// Config describes a decoder as read from its checkpoint.
type Config struct {
	// Name is the model's own name (the GGUF file or folder name), used as
	// the alias for output folders.
	Name string `json:"name"`
	// Architecture is the family's Hugging Face model_type ("llama", "gemma3_text", …).
	Architecture string `json:"architecture"`

	NumLayers     int     `json:"n_layers"`
	DModel        int     `json:"d_model"`
	NumHeads      int     `json:"n_heads"`
	NumKVHeads    int     `json:"n_kv_heads"`
	HeadDim       int     `json:"head_dim"`
	FFNDim        int     `json:"ffn_dim"`
	VocabSize     int     `json:"vocab_size"`
	ContextLength int     `json:"context_length"`
	RMSNormEps    float64 `json:"rms_norm_eps"`
	// Activation of the gated MLP: "silu", "gelu_pytorch_tanh" or "gelu".
	Activation string `json:"activation"`

	// RoPE is the rotary embedding of full-attention layers; SlidingRoPE,
	// when set, that of sliding-window layers (Gemma 3's local base).
	RoPE        RoPE  `json:"rope"`
	SlidingRoPE *RoPE `json:"sliding_rope,omitempty"`
	// SlidingWindow: a sliding layer's query sees the SlidingWindow most
	// recent positions, itself included (transformers' kv > q - window).
	SlidingWindow int `json:"sliding_window,omitempty"`
	// Layers holds what differs per layer.
	Layers []Layer `json:"layers"`

	// Scales; 0 or 1 means none.
	EmbedScale     float64 `json:"embed_scale,omitempty"`     // embeddings × this (Gemma √d, Granite embedding_multiplier)
	ResidualScale  float64 `json:"residual_scale,omitempty"`  // attention and MLP outputs × this before the residual add (Granite)
	AttentionScale float64 `json:"attention_scale,omitempty"` // q·k × this; 0: 1/√head_dim
	AttnSoftcap    float64 `json:"attn_softcap,omitempty"`    // scores → cap·tanh(scores/cap) (Gemma 2)
	FinalSoftcap   float64 `json:"final_softcap,omitempty"`   // logits → cap·tanh(logits/cap) (Gemma 2)
	LogitsDivisor  float64 `json:"logits_divisor,omitempty"`  // logits ÷ this (Granite logits_scaling)

	// Biases: AttnBias on q, k, v; OutBias on o; MLPBias on gate, up, down.
	AttnBias bool `json:"attn_bias,omitempty"`
	OutBias  bool `json:"out_bias,omitempty"`
	MLPBias  bool `json:"mlp_bias,omitempty"`
	// TiedEmbeddings: the LM head reuses the token embedding matrix.
	TiedEmbeddings bool `json:"tied_embeddings"`

	// Special tokens, from the checkpoint; -1 when absent. AddBOS: the
	// tokenizer prepends BOS to raw text (chat templates write it themselves).
	BOS    int32 `json:"bos_token_id"`
	EOS    int32 `json:"eos_token_id"`
	AddBOS bool  `json:"add_bos,omitempty"`

	// ContextNote says why ContextLength is below the checkpoint's own
	// maximum, when it is (e.g. longrope switches factors past it).
	ContextNote string `json:"context_note,omitempty"`

	family *Family
	// dtype of weights, activations and KV cache (InvalidDType: float32); see LoadOptions.
	dtype dtypes.DType
	// devices the weights are split over (0 or 1: one); see LoadOptions.
	devices int
}

// Layer is what differs between the layers of one model.
type Layer struct {
	Type   LayerType `json:"type"`
	NoRoPE bool      `json:"no_rope,omitempty"` // the layer applies no rotary embedding (SmolLM3)
}

// RoPE holds one rotary embedding's settings, as transformers'
// rope_parameters (modeling_rope_utils.py) or llama.cpp's rope keys.
type RoPE struct {
	Type      string  `json:"type"` // default, linear, dynamic, yarn, llama3, longrope
	Theta     float64 `json:"theta"`
	RotaryDim int     `json:"rotary_dim"` // leading dims of each head that rotate (partial_rotary_factor)

	Factor                        float64   `json:"factor,omitempty"`
	LowFreqFactor                 float64   `json:"low_freq_factor,omitempty"`
	HighFreqFactor                float64   `json:"high_freq_factor,omitempty"`
	OriginalMaxPositionEmbeddings int       `json:"original_max_position_embeddings,omitempty"`
	AttentionFactor               float64   `json:"attention_factor,omitempty"` // cos and sin × this (yarn, longrope); 0: 1
	BetaFast                      float64   `json:"beta_fast,omitempty"`
	BetaSlow                      float64   `json:"beta_slow,omitempty"`
	NoTruncate                    bool      `json:"no_truncate,omitempty"`
	ShortFactor                   []float64 `json:"short_factor,omitempty"`
	// FreqFactors divide the default inverse frequencies one by one:
	// llama.cpp's rope_freqs.weight (llama3) or rope_factors_short (longrope).
	FreqFactors []float64 `json:"freq_factors,omitempty"`
}

// Family returns the config's family description.
func (c *Config) Family() *Family { return c.family }

// ropeOf returns the rotary embedding of layer i, nil when it has none.
func (c *Config) ropeOf(i int) *RoPE {
	switch {
	case c.Layers[i].NoRoPE:
		return nil
	case c.Layers[i].Type == SlidingAttention && c.SlidingRoPE != nil:
		return c.SlidingRoPE
	}
	return &c.RoPE
}

// InvFrequencies returns the inverse frequencies, [RotaryDim/2], and the
// factor cos and sin are multiplied by, as transformers' ROPE_INIT_FUNCTIONS
// compute them (at init, i.e. for sequences within the context).
func (r *RoPE) InvFrequencies() (inv []float32, attention float64) {
	dim := r.RotaryDim
	half := dim / 2
	base := make([]float64, half) // the default inverse frequencies
	for i := range half {
		base[i] = 1 / math.Pow(r.Theta, float64(2*i)/float64(dim))
	}
	out := make([]float64, half)
	attention = 1
	switch r.Type {
	case "default", "dynamic": // dynamic equals default within max_position_embeddings
		copy(out, base)
	case "linear":
		for i, f := range base {
			out[i] = f / r.Factor
		}
	case "llama3":
		orig := float64(r.OriginalMaxPositionEmbeddings)
		lowWavelen, highWavelen := orig/r.LowFreqFactor, orig/r.HighFreqFactor
		for i, f := range base {
			wavelen := 2 * math.Pi / f
			switch {
			case wavelen > lowWavelen:
				out[i] = f / r.Factor
			case wavelen >= highWavelen: // the medium band: interpolate
				smooth := (orig/wavelen - r.LowFreqFactor) / (r.HighFreqFactor - r.LowFreqFactor)
				out[i] = (1-smooth)*f/r.Factor + smooth*f
			default:
				out[i] = f
			}
		}
	case "yarn":
		out, attention = r.yarn(base)
	case "longrope":
		for i, f := range base {
			out[i] = f / r.ShortFactor[i]
		}
	}
	if r.FreqFactors != nil { // llama.cpp's precomputed factors
		for i := range out {
			out[i] /= r.FreqFactors[i]
		}
	}
	if r.AttentionFactor != 0 {
		attention = r.AttentionFactor
	}
	inv = make([]float32, half)
	for i, f := range out {
		inv[i] = float32(f)
	}
	return inv, attention
}

// yarn is transformers' _compute_yarn_parameters.
func (r *RoPE) yarn(base []float64) ([]float64, float64) {
	dim := float64(r.RotaryDim)
	getMscale := func(scale float64) float64 {
		if scale <= 1 {
			return 1
		}
		return 0.1*math.Log(scale) + 1
	}
	attention := getMscale(r.Factor)
	betaFast, betaSlow := r.BetaFast, r.BetaSlow
	if betaFast == 0 {
		betaFast = 32
	}
	if betaSlow == 0 {
		betaSlow = 1
	}
	correctionDim := func(rotations float64) float64 {
		return dim * math.Log(float64(r.OriginalMaxPositionEmbeddings)/(rotations*2*math.Pi)) / (2 * math.Log(r.Theta))
	}
	low, high := correctionDim(betaFast), correctionDim(betaSlow)
	if !r.NoTruncate {
		low, high = math.Floor(low), math.Ceil(high)
	}
	low, high = math.Max(low, 0), math.Min(high, dim-1)
	if low == high {
		high += 0.001
	}
	out := make([]float64, len(base))
	for i, f := range base {
		ramp := math.Min(math.Max((float64(i)-low)/(high-low), 0), 1)
		extrapolation := 1 - ramp
		out[i] = f/r.Factor*(1-extrapolation) + f*extrapolation
	}
	return out, attention
}

// validate checks that the numbers are consistent and fills what the
// family implies, before any weight is bound.
func (c *Config) validate() error {
	if c.family == nil {
		f, err := familyFor(c.Architecture, false)
		if err != nil {
			return err
		}
		c.family = f
	}
	switch {
	case c.NumLayers <= 0 || c.DModel <= 0 || c.NumHeads <= 0 || c.FFNDim <= 0 || c.VocabSize <= 0:
		return fmt.Errorf("model config incomplete (layers=%d d_model=%d heads=%d ffn=%d vocab=%d): the checkpoint's metadata is missing or corrupt", c.NumLayers, c.DModel, c.NumHeads, c.FFNDim, c.VocabSize)
	case c.NumKVHeads <= 0 || c.NumHeads%c.NumKVHeads != 0:
		return fmt.Errorf("model config: %d heads is not a multiple of %d key/value heads", c.NumHeads, c.NumKVHeads)
	case c.HeadDim <= 0 || c.HeadDim%2 != 0:
		return fmt.Errorf("model config: head dimension %d must be positive and even for RoPE", c.HeadDim)
	}
	if c.Activation == "" {
		c.Activation = c.family.Activation
		if c.Activation == "" {
			c.Activation = "silu"
		}
	}
	switch c.Activation {
	case "silu", "gelu_pytorch_tanh", "gelu":
	default:
		return fmt.Errorf("model config: activation %q is not supported: refusalkit implements silu, gelu_pytorch_tanh and gelu", c.Activation)
	}
	if c.RMSNormEps <= 0 {
		c.RMSNormEps = 1e-6
	}
	if c.ContextLength <= 0 {
		c.ContextLength = 2048
	}
	if c.family.QKVBias {
		c.AttnBias = true
	}
	if c.family.ScaleEmbeddings {
		// transformers multiplies by √d_model rounded to the weights' dtype.
		c.EmbedScale = float64(float32(math.Sqrt(float64(c.DModel))))
	}
	if c.Layers == nil {
		c.Layers = make([]Layer, c.NumLayers)
		for i := range c.Layers {
			c.Layers[i].Type = FullAttention
			if c.SlidingWindow > 0 {
				c.Layers[i].Type = SlidingAttention
			}
		}
	}
	if len(c.Layers) != c.NumLayers {
		return fmt.Errorf("model config: %d layer types for %d layers", len(c.Layers), c.NumLayers)
	}
	for i, l := range c.Layers {
		switch l.Type {
		case FullAttention:
		case SlidingAttention:
			if c.SlidingWindow <= 0 {
				return fmt.Errorf("model config: layer %d is a sliding-window layer but the window is %d", i, c.SlidingWindow)
			}
		default:
			return fmt.Errorf("model config: layer %d has attention type %q: refusalkit implements full_attention and sliding_attention", i, l.Type)
		}
	}
	for _, r := range []*RoPE{&c.RoPE, c.SlidingRoPE} {
		if r == nil {
			continue
		}
		if err := r.fill(c); err != nil {
			return err
		}
	}
	return nil
}

// fill completes a RoPE's defaults and checks its parameters.
func (r *RoPE) fill(c *Config) error {
	if r.Type == "" {
		r.Type = "default"
	}
	if r.Theta <= 0 {
		r.Theta = 10000
	}
	if r.RotaryDim == 0 {
		r.RotaryDim = c.HeadDim
	}
	half := r.RotaryDim / 2
	switch {
	case r.RotaryDim%2 != 0 || r.RotaryDim > c.HeadDim:
		return fmt.Errorf("model config: rotary dimension %d must be even and at most head_dim %d", r.RotaryDim, c.HeadDim)
	case r.FreqFactors != nil && len(r.FreqFactors) != half:
		return fmt.Errorf("model config: %d RoPE frequency factors for %d frequencies", len(r.FreqFactors), half)
	}
	need := func(ok bool, what string) error {
		if !ok {
			return fmt.Errorf("model config: %s RoPE scaling needs %s", r.Type, what)
		}
		return nil
	}
	switch r.Type {
	case "default":
	case "linear", "dynamic":
		return need(r.Factor > 0, "a positive factor")
	case "llama3":
		return need(r.Factor > 0 && r.LowFreqFactor > 0 && r.HighFreqFactor > r.LowFreqFactor && r.OriginalMaxPositionEmbeddings > 0,
			"factor, low_freq_factor < high_freq_factor and original_max_position_embeddings")
	case "yarn":
		return need(r.Factor > 0 && r.OriginalMaxPositionEmbeddings > 0, "factor and original_max_position_embeddings")
	case "longrope":
		if err := need(len(r.ShortFactor) == half && r.OriginalMaxPositionEmbeddings > 0,
			fmt.Sprintf("short_factor with %d values and original_max_position_embeddings", half)); err != nil {
			return err
		}
		// transformers switches to long_factor once a sequence passes the
		// original length, re-rotating only the new keys; refusalkit computes
		// exactly the short-factor regime and stops at its end.
		if c.ContextLength > r.OriginalMaxPositionEmbeddings {
			c.ContextLength = r.OriginalMaxPositionEmbeddings
			c.ContextNote = fmt.Sprintf("longrope: short_factor regime only (%d tokens)", r.OriginalMaxPositionEmbeddings)
		}
	default:
		return fmt.Errorf("model config: RoPE type %q is not supported: refusalkit implements default, linear, dynamic, yarn, llama3 and longrope", r.Type)
	}
	return nil
}
