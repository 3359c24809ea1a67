package models

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/refusalkit/refusalkit/models/tokenizer"
)

// writeSafetensors writes float32 tensors in the safetensors layout (test helper).
func writeSafetensors(t *testing.T, path string, ts map[string]*tensors.Tensor) {
	t.Helper()
	names := make([]string, 0, len(ts))
	for n := range ts {
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{}
	var data []byte
	for _, n := range names {
		flat, err := tensors.CopyFlatData[float32](ts[n])
		if err != nil {
			t.Fatal(err)
		}
		start := len(data)
		for _, x := range flat {
			data = binary.LittleEndian.AppendUint32(data, math.Float32bits(x))
		}
		header[n] = map[string]any{"dtype": "F32", "shape": ts[n].Shape().Dimensions, "data_offsets": []int{start, len(data)}}
	}
	h, _ := json.Marshal(header)
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	out = append(append(out, h...), data...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// The same weights, tokenizer and template saved as a Hugging Face folder
// (config.json, model.safetensors, tokenizer.json, tokenizer_config.json)
// load through the safetensors path and give the same logits as the GGUF.
func TestHFFolderMatchesGGUF(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 540 MB folder")
	}
	m := loadBundled(t)
	c := m.Config
	dir := t.TempDir()
	byName := map[string]*tensors.Tensor{}
	m.weights.visit(&c, func(s weightSpec, v **tensors.Tensor) { byName[s.hf] = *v })
	writeSafetensors(t, filepath.Join(dir, "model.safetensors"), byName)
	cfg := map[string]any{"model_type": c.Architecture, "num_hidden_layers": c.NumLayers, "hidden_size": c.DModel,
		"num_attention_heads": c.NumHeads, "num_key_value_heads": c.NumKVHeads, "intermediate_size": c.FFNDim,
		"vocab_size": c.VocabSize, "max_position_embeddings": c.ContextLength, "rms_norm_eps": c.RMSNormEps,
		"rope_theta": c.RoPE.Theta, "tie_word_embeddings": c.TiedEmbeddings, "bos_token_id": c.BOS, "eos_token_id": c.EOS}
	js, _ := json.Marshal(cfg)
	_ = os.WriteFile(filepath.Join(dir, "config.json"), js, 0o644)
	tokJSON, err := tokenizer.BuildJSONFromGGUFFile(m.Source)
	if err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "tokenizer.json"), tokJSON, 0o644)
	tc, _ := json.Marshal(map[string]any{"chat_template": m.Template.Source, "bos_token": m.Template.BOSToken, "eos_token": m.Template.EOSToken})
	_ = os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), tc, 0o644)

	hf, err := Load(dir, m.Backend)
	if err != nil {
		t.Fatal(err)
	}
	if hf.Config.NumLayers != c.NumLayers || !hf.Config.TiedEmbeddings {
		t.Fatalf("config read back as %+v", hf.Config)
	}
	_, ids, err := m.EncodePrompt("Name three colours.")
	if err != nil {
		t.Fatal(err)
	}
	_, hfIDs, err := hf.EncodePrompt("Name three colours.")
	if err != nil {
		t.Fatal(err)
	}
	if !equalIDs(ids, hfIDs) {
		t.Fatalf("prompt ids differ: %v vs %v", hfIDs, ids)
	}
	a, err := m.Forward([][]int32{ids}, ForwardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := hf.Forward([][]int32{ids}, ForwardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff32(a.Logits[0], b.Logits[0]); d > 1e-5 {
		t.Errorf("logits differ by %g between the GGUF and the safetensors folder", d)
	}
}
