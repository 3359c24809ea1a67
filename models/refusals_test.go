package models

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
)

// Every key or tensor that would change the computation and is not
// implemented is refused with one line naming it; an unknown key is a
// warning. The base checkpoint is the conformance suite's llama-legacy.
func TestUnsupportedSettingsAreRefused(t *testing.T) {
	base := filepath.Join(familiesDir, "llama-legacy", "hf")
	if _, err := os.Stat(base); err != nil {
		t.Skipf("reference checkpoint missing (%v)", err)
	}
	qwen2 := filepath.Join(familiesDir, "qwen2", "hf") // a family whose config reads layer_types
	cases := []struct {
		name  string
		base  string // default: llama-legacy
		edit  func(cfg map[string]any)
		extra map[string]*tensors.Tensor // tensors added to the folder
		want  []string                   // substrings of the one-line error
	}{
		{"unknown architecture", "", func(c map[string]any) { c["model_type"] = "mamba" },
			nil, []string{`unsupported architecture "mamba"`, "gemma3_text", "qwen3"}},
		{"rope type", "", func(c map[string]any) { c["rope_scaling"] = map[string]any{"rope_type": "su", "factor": 2.0} },
			nil, []string{`RoPE type "su" is not supported`}},
		{"rope key", "", func(c map[string]any) {
			c["rope_scaling"] = map[string]any{"rope_type": "linear", "factor": 2.0, "mrope_section": []int{1, 2}}
		}, nil, []string{`RoPE parameter "mrope_section"`}},
		{"llama3 incomplete", "", func(c map[string]any) { c["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8.0} },
			nil, []string{"llama3 RoPE scaling needs", "low_freq_factor"}},
		{"activation", "", func(c map[string]any) { c["hidden_act"] = "relu2" },
			nil, []string{`activation "relu2" is not supported`}},
		{"quantized", "", func(c map[string]any) { c["quantization_config"] = map[string]any{"quant_method": "gptq"} },
			nil, []string{`key "quantization_config"`, "quantized weights"}},
		{"bidirectional", "", func(c map[string]any) { c["use_bidirectional_attention"] = true },
			nil, []string{`key "use_bidirectional_attention" = true is not supported`}},
		{"layer type", qwen2, func(c map[string]any) {
			c["layer_types"] = []string{"full_attention", "chunked_attention"}
			c["num_hidden_layers"] = 2
		}, nil, []string{`attention type "chunked_attention"`}},
		{"layer count", qwen2, func(c map[string]any) { c["layer_types"] = []string{"full_attention"}; c["num_hidden_layers"] = 2 },
			nil, []string{`"layer_types" has 1 entries for 2 layers`}},
		{"bad value", "", func(c map[string]any) { c["num_hidden_layers"] = "two" },
			nil, []string{`key "num_hidden_layers" = "two"`}},
		{"baseline", "", func(c map[string]any) {}, nil, nil}, // the unedited checkpoint loads
		{"unexpected tensor", "", func(c map[string]any) {}, map[string]*tensors.Tensor{
			"model.layers.0.self_attn.sinks": tensors.FromFlatDataAndDimensions(make([]float32, 4), 4)},
			[]string{"has tensors refusalkit does not use: model.layers.0.self_attn.sinks"}},
		{"second weights file", "", func(c map[string]any) {}, nil, []string{"has 2 .safetensors files but no model.safetensors.index.json"}},
	}
	backend, err := NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := base
			if c.base != "" {
				src = c.base
			}
			dir := copyDir(t, src)
			editConfig(t, dir, c.edit)
			for name, x := range c.extra {
				appendSafetensor(t, filepath.Join(dir, "model.safetensors"), name, x)
			}
			if c.name == "second weights file" {
				writeSafetensors(t, filepath.Join(dir, "adapter_model.safetensors"), map[string]*tensors.Tensor{
					"base_model.lora_A": tensors.FromFlatDataAndDimensions(make([]float32, 4), 4)})
			}
			m, err := Load(dir, backend)
			if c.want == nil {
				if err != nil {
					t.Fatalf("baseline does not load: %v", err)
				}
				m.Close()
				return
			}
			if err == nil {
				m.Close()
				t.Fatal("loaded without an error")
			}
			checkOneLine(t, err, c.want)
		})
	}

	t.Run("gemma legacy gelu", func(t *testing.T) {
		// transformers' GemmaConfig reads hidden_act "gelu" (as in gemma-2b-it's
		// config.json) as the tanh approximation.
		dir := copyDir(t, filepath.Join(familiesDir, "gemma", "hf"))
		editConfig(t, dir, func(c map[string]any) { c["hidden_act"] = "gelu" })
		cfg, _, err := configFromHF(filepath.Join(dir, "config.json"), "gemma")
		if err != nil || cfg.Activation != "gelu_pytorch_tanh" {
			t.Errorf("activation %q (%v), want gelu_pytorch_tanh", cfg.Activation, err)
		}
	})

	t.Run("bias key of another family", func(t *testing.T) {
		// MistralConfig has no attention_bias: transformers ignores the key, so
		// the model has no biases and the key is only a warning.
		dir := copyDir(t, filepath.Join(familiesDir, "mistral", "hf"))
		editConfig(t, dir, func(c map[string]any) { c["attention_bias"] = true; c["mlp_bias"] = true })
		cfg, warnings, err := configFromHF(filepath.Join(dir, "config.json"), "mistral")
		if err != nil || cfg.AttnBias || cfg.OutBias || cfg.MLPBias || len(warnings) != 2 {
			t.Errorf("biases %v %v %v, warnings %q, err %v; want none, two warnings", cfg.AttnBias, cfg.OutBias, cfg.MLPBias, warnings, err)
		}
	})

	t.Run("unknown key warns", func(t *testing.T) {
		dir := copyDir(t, base)
		editConfig(t, dir, func(c map[string]any) { c["attn_temperature_tuning"] = 4 })
		m, err := Load(dir, backend)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], `key "attn_temperature_tuning" = 4 is not known`) {
			t.Errorf("warnings %q", m.Warnings)
		}
	})
}

// GGUF metadata refusals, on headers with no tensors (the config is read first).
func TestUnsupportedGGUFSettingsAreRefused(t *testing.T) {
	llama := map[string]any{
		"general.architecture": "llama", "llama.block_count": uint32(2), "llama.embedding_length": uint32(32),
		"llama.attention.head_count": uint32(4), "llama.feed_forward_length": uint32(64), "llama.vocab_size": uint32(300),
	}
	with := func(kv map[string]any) map[string]any {
		out := maps.Clone(llama)
		maps.Copy(out, kv)
		return out
	}
	cases := []struct {
		name string
		kv   map[string]any
		want []string
	}{
		{"architecture", with(map[string]any{"general.architecture": "rwkv6"}), []string{`unsupported architecture "rwkv6"`}},
		{"experts", with(map[string]any{"llama.expert_count": uint32(8)}), []string{"mixture of 8 experts"}},
		{"not causal", with(map[string]any{"llama.attention.causal": false}), []string{"attention.causal = false"}},
		{"rope scaling", with(map[string]any{"llama.rope.scaling.type": "longrope"}), []string{`RoPE scaling "longrope" is not supported`}},
		{"layer norm", with(map[string]any{"llama.attention.layer_norm_epsilon": float32(1e-5)}), []string{"LayerNorm"}},
		{"value heads", with(map[string]any{"llama.attention.key_length": uint32(8), "llama.attention.value_length": uint32(16)}),
			[]string{"value head size 16 differs from key head size 8"}},
		{"split", with(map[string]any{"split.count": uint16(3)}), []string{"split in 3 files", "gguf-split --merge"}},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".gguf")
			if err := os.WriteFile(path, typedGGUF(t, c.kv), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path, nil)
			if err == nil {
				t.Fatal("loaded without an error")
			}
			checkOneLine(t, err, c.want)
		})
	}
}

func checkOneLine(t *testing.T, err error, want []string) {
	t.Helper()
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans several lines: %q", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q lacks %q", msg, w)
		}
	}
}

// typedGGUF writes a GGUF v3 header with typed metadata and no tensors.
func typedGGUF(t *testing.T, kv map[string]any) []byte {
	var b bytes.Buffer
	w := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	str := func(s string) { w(uint64(len(s))); b.WriteString(s) }
	b.WriteString("GGUF")
	w(uint32(3))
	w(uint64(0))
	w(uint64(len(kv)))
	for k, v := range kv {
		str(k)
		switch x := v.(type) {
		case uint16:
			w(uint32(2))
			w(x)
		case uint32:
			w(uint32(4))
			w(x)
		case float32:
			w(uint32(6))
			w(math.Float32bits(x))
		case bool:
			w(uint32(7))
			w(x)
		case string:
			w(uint32(8))
			str(x)
		default:
			t.Fatalf("typedGGUF: %T", v)
		}
	}
	return b.Bytes()
}

// appendSafetensor adds one float32 tensor to a safetensors file.
func appendSafetensor(t *testing.T, path, name string, x *tensors.Tensor) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(data)
	var header map[string]any
	if err := json.Unmarshal(data[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	body := data[8+n:]
	flat, err := tensors.CopyFlatData[float32](x)
	if err != nil {
		t.Fatal(err)
	}
	start := len(body)
	for _, v := range flat {
		body = binary.LittleEndian.AppendUint32(body, math.Float32bits(v))
	}
	header[name] = map[string]any{"dtype": "F32", "shape": x.Shape().Dimensions, "data_offsets": []int{start, len(body)}}
	h, _ := json.Marshal(header)
	out := append(binary.LittleEndian.AppendUint64(nil, uint64(len(h))), h...)
	if err := os.WriteFile(path, append(out, body...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies a flat folder into a temporary one.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func editConfig(t *testing.T, dir string, edit func(map[string]any)) {
	t.Helper()
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	if data, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
