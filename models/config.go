// Package models runs Llama-family chat models in GoMLX with the residual
// stream open for capture and intervention.
//
// One code path serves every supported checkpoint: the layer count, widths,
// RoPE settings and the few things that really differ between families
// (QKV biases, tied head) are read from the checkpoint's own metadata — GGUF
// keys or config.json — never guessed from the model's name.
package models

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
)

// Config describes a Llama-family decoder as read from its checkpoint.
type Config struct {
	// Name is the model's own name (GGUF general.name or the folder name),
	// used as the alias for output folders.
	Name string `json:"name"`
	// Architecture is the checkpoint's architecture key: "llama", "qwen2", "mistral".
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

	RoPETheta   float64     `json:"rope_theta"`
	RoPEScaling RoPEScaling `json:"rope_scaling"`

	// QKVBias: the attention projections carry biases (Qwen2).
	QKVBias bool `json:"qkv_bias"`
	// TiedEmbeddings: the LM head reuses the token embedding matrix.
	TiedEmbeddings bool `json:"tied_embeddings"`

	// Special tokens, from the checkpoint; -1 when absent.
	BOS int32 `json:"bos_token_id"`
	EOS int32 `json:"eos_token_id"`
}

// RoPEScaling holds the rotary-embedding frequency scaling, as in Hugging Face's
// rope_scaling. Type "" means none.
type RoPEScaling struct {
	Type                          string  `json:"type,omitempty"` // "", "linear", "llama3"
	Factor                        float64 `json:"factor,omitempty"`
	LowFreqFactor                 float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor                float64 `json:"high_freq_factor,omitempty"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings,omitempty"`
}

// family is the small table of what really differs between the supported
// architectures; everything else comes from the checkpoint's numbers.
type family struct {
	qkvBias bool
}

var families = map[string]family{
	"llama":   {},
	"mistral": {},
	"qwen2":   {qkvBias: true},
}

// SupportedArchitectures lists the architecture keys this package runs.
func SupportedArchitectures() []string { return []string{"llama", "mistral", "qwen2"} }

// InvFrequencies returns the RoPE inverse frequencies, [HeadDim/2], with the
// configured scaling applied (Hugging Face's _compute_default_rope_parameters,
// _compute_linear_scaling_rope_parameters and _compute_llama3_parameters).
func (c *Config) InvFrequencies() []float32 {
	half := c.HeadDim / 2
	inv := make([]float32, half)
	for i := range half {
		f := 1.0 / math.Pow(c.RoPETheta, float64(2*i)/float64(c.HeadDim))
		switch c.RoPEScaling.Type {
		case "linear":
			f /= c.RoPEScaling.Factor
		case "llama3":
			s := c.RoPEScaling
			lowWavelen := float64(s.OriginalMaxPositionEmbeddings) / s.LowFreqFactor
			highWavelen := float64(s.OriginalMaxPositionEmbeddings) / s.HighFreqFactor
			wavelen := 2 * math.Pi / f
			switch {
			case wavelen > lowWavelen:
				f /= s.Factor
			case wavelen >= highWavelen: // medium band: interpolate
				smooth := (float64(s.OriginalMaxPositionEmbeddings)/wavelen - s.LowFreqFactor) /
					(s.HighFreqFactor - s.LowFreqFactor)
				f = (1-smooth)*f/s.Factor + smooth*f
			}
		}
		inv[i] = float32(f)
	}
	return inv
}

// validate checks the numbers are consistent before any weight is bound.
func (c *Config) validate() error {
	fam, ok := families[c.Architecture]
	if !ok {
		return fmt.Errorf("unsupported architecture %q: refusalkit runs %v; use a model of one of those families", c.Architecture, SupportedArchitectures())
	}
	c.QKVBias = c.QKVBias || fam.qkvBias
	switch {
	case c.NumLayers <= 0 || c.DModel <= 0 || c.NumHeads <= 0 || c.FFNDim <= 0 || c.VocabSize <= 0:
		return fmt.Errorf("model config incomplete (layers=%d d_model=%d heads=%d ffn=%d vocab=%d): the checkpoint's metadata is missing or corrupt", c.NumLayers, c.DModel, c.NumHeads, c.FFNDim, c.VocabSize)
	case c.NumKVHeads <= 0 || c.NumHeads%c.NumKVHeads != 0:
		return fmt.Errorf("model config: %d heads is not a multiple of %d key/value heads", c.NumHeads, c.NumKVHeads)
	case c.HeadDim <= 0 || c.HeadDim%2 != 0:
		return fmt.Errorf("model config: head dimension %d must be positive and even for RoPE", c.HeadDim)
	}
	if c.RoPETheta <= 0 {
		c.RoPETheta = 10000
	}
	if c.RMSNormEps <= 0 {
		c.RMSNormEps = 1e-5
	}
	if c.ContextLength <= 0 {
		c.ContextLength = 2048
	}
	return nil
}

// hfConfig is the subset of a Hugging Face config.json this package reads.
type hfConfig struct {
	ModelType             string          `json:"model_type"`
	Architectures         []string        `json:"architectures"`
	NumHiddenLayers       int             `json:"num_hidden_layers"`
	HiddenSize            int             `json:"hidden_size"`
	NumAttentionHeads     int             `json:"num_attention_heads"`
	NumKeyValueHeads      int             `json:"num_key_value_heads"`
	HeadDim               int             `json:"head_dim"`
	IntermediateSize      int             `json:"intermediate_size"`
	VocabSize             int             `json:"vocab_size"`
	MaxPositionEmbeddings int             `json:"max_position_embeddings"`
	RMSNormEps            float64         `json:"rms_norm_eps"`
	RoPETheta             float64         `json:"rope_theta"`
	RoPEScaling           *hfRoPEScaling  `json:"rope_scaling"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	AttentionBias         bool            `json:"attention_bias"`
	BOSTokenID            json.RawMessage `json:"bos_token_id"`
	EOSTokenID            json.RawMessage `json:"eos_token_id"`
}

type hfRoPEScaling struct {
	Type                          string  `json:"type"`
	RoPEType                      string  `json:"rope_type"`
	Factor                        float64 `json:"factor"`
	LowFreqFactor                 float64 `json:"low_freq_factor"`
	HighFreqFactor                float64 `json:"high_freq_factor"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings"`
}

// configFromHF reads a Hugging Face config.json.
func configFromHF(path, name string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read model config: %w", err)
	}
	var h hfConfig
	if err := json.Unmarshal(data, &h); err != nil {
		return Config{}, fmt.Errorf("model config %s is not valid JSON (%v): re-download the model folder", path, err)
	}
	c := Config{
		Name: name, Architecture: h.ModelType,
		NumLayers: h.NumHiddenLayers, DModel: h.HiddenSize, NumHeads: h.NumAttentionHeads,
		NumKVHeads: h.NumKeyValueHeads, HeadDim: h.HeadDim, FFNDim: h.IntermediateSize,
		VocabSize: h.VocabSize, ContextLength: h.MaxPositionEmbeddings,
		RMSNormEps: h.RMSNormEps, RoPETheta: h.RoPETheta, QKVBias: h.AttentionBias,
		TiedEmbeddings: h.TieWordEmbeddings == nil || *h.TieWordEmbeddings,
		BOS:            firstTokenID(h.BOSTokenID), EOS: firstTokenID(h.EOSTokenID),
	}
	if c.NumKVHeads == 0 {
		c.NumKVHeads = c.NumHeads
	}
	if c.HeadDim == 0 && c.NumHeads > 0 {
		c.HeadDim = c.DModel / c.NumHeads
	}
	if s := h.RoPEScaling; s != nil {
		t := s.RoPEType
		if t == "" {
			t = s.Type
		}
		if t != "default" {
			c.RoPEScaling = RoPEScaling{Type: t, Factor: s.Factor, LowFreqFactor: s.LowFreqFactor,
				HighFreqFactor: s.HighFreqFactor, OriginalMaxPositionEmbeddings: s.OriginalMaxPositionEmbeddings}
		}
	}
	if t := c.RoPEScaling.Type; t != "" && t != "linear" && t != "llama3" {
		return Config{}, fmt.Errorf("unsupported rope_scaling type %q in %s: refusalkit supports none, linear and llama3", t, path)
	}
	return c, c.validate()
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
