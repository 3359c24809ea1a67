package models

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// The reference comes from an independent implementation, Hugging Face
// transformers on CPU in float32, loading the same GGUF file; see the file's
// "regenerate" field for the command that rebuilds it.
const referencePath = "../testdata/reference/smollm2_reference.json"

type reference struct {
	Regenerate string `json:"regenerate"`
	Prompts    []struct {
		Prompt    string  `json:"prompt"`
		Rendered  string  `json:"rendered"`
		PromptIDs []int32 `json:"prompt_ids"`
		Logits    struct {
			TopIDs    []int32   `json:"top20_ids"`
			TopValues []float64 `json:"top20_values"`
			MaxAbs    float64   `json:"max_abs"`
			Argmax    int32     `json:"argmax"`
		} `json:"last_position_logits"`
		Greedy struct {
			IDs  []int32 `json:"ids"`
			Text string  `json:"text"`
		} `json:"greedy"`
		Hidden *struct {
			HF struct {
				MeanFirst8 [][]float64 `json:"mean_first8"`
				MeanNorm   []float64   `json:"mean_l2norm"`
			} `json:"hf"`
		} `json:"hidden_states"`
	} `json:"prompts"`
}

// loadBundled loads the real bundled model, or skips when `make setup` has not installed it.
func loadBundled(t *testing.T) *Model {
	t.Helper()
	if _, err := Resolve(DefaultModel); err != nil {
		t.Skipf("bundled model not installed (%v)", err)
	}
	m, err := Load(DefaultModel, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backend: %s", m.Backend.Name())
	return m
}

func TestMatchesTransformersReference(t *testing.T) {
	checkTransformersReference(t, loadBundled(t), referencePath)
}

// qwenReferencePath is Qwen2.5-Coder-0.5B-Instruct's reference: a
// safety-tuned model, on two harmful requests (one it refuses), two harmless
// ones and the spec's forced refusal.
const qwenReferencePath = "../testdata/reference/qwen2.5-coder-0.5b_reference.json"

// TestQwenMatchesTransformers checks the model that refuses (qwen2 family,
// Q4_K_M, its own chat template) against transformers on the same GGUF.
// `make test` installs it (tools/setup/qwen.sh 0.5b); elsewhere it is skipped.
func TestQwenMatchesTransformers(t *testing.T) {
	const name = "qwen2.5-coder-0.5b-instruct"
	p := filepath.Join(ModelsDir(), Bundled[name].File)
	if !fileExists(p) {
		t.Skipf("%s is not installed at %s (bash tools/setup/qwen.sh 0.5b)", name, p)
	}
	m, err := Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkTransformersReference(t, m, qwenReferencePath)
}

// checkTransformersReference compares m with a reference made by
// tools/reference/make_reference.py: the rendered chat template and its token
// ids, the top-20 logits after the prompt, the 32-token greedy continuation
// and, for the prompt that has them, the mean residual stream at every layer.
func checkTransformersReference(t *testing.T, m *Model, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ref reference
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	for _, p := range ref.Prompts {
		t.Run(p.Prompt[:min(24, len(p.Prompt))], func(t *testing.T) {
			text, ids, err := m.EncodePrompt(p.Prompt)
			if err != nil {
				t.Fatal(err)
			}
			if text != p.Rendered {
				t.Fatalf("chat template renders\n%q\nwant\n%q", text, p.Rendered)
			}
			if !equalIDs(ids, p.PromptIDs) {
				t.Fatalf("prompt ids %v\nwant %v", ids, p.PromptIDs)
			}
			f, err := m.Forward([][]int32{ids}, ForwardOptions{})
			if err != nil {
				t.Fatal(err)
			}
			logits := f.Logits[0]
			// float32 through 30 layers on different kernels: 1e-3 absolute on logits of magnitude ~25.
			worst := 0.0
			for i, id := range p.Logits.TopIDs {
				worst = math.Max(worst, math.Abs(float64(logits[id])-p.Logits.TopValues[i]))
			}
			if worst > 1e-3 {
				t.Errorf("top-20 first-position logits differ from transformers by up to %g (> 1e-3)", worst)
			}
			best := 0
			for i, v := range logits {
				if v > logits[best] {
					best = i
				}
			}
			if int32(best) != p.Logits.Argmax {
				t.Errorf("argmax %d, want %d", best, p.Logits.Argmax)
			}
			t.Logf("max |Δlogit| over the top 20: %.2g", worst)

			g, err := m.GenerateIDs([][]int32{ids}, GenerateOptions{MaxNewTokens: len(p.Greedy.IDs), IgnoreStop: true})
			if err != nil {
				t.Fatal(err)
			}
			if !equalIDs(g.Tokens[0], p.Greedy.IDs) {
				t.Errorf("greedy continuation %v\nwant %v (%q)", g.Tokens[0], p.Greedy.IDs, p.Greedy.Text)
			}

			if p.Hidden == nil {
				return
			}
			f, err = m.Forward([][]int32{ids}, ForwardOptions{CaptureMask: allPositions([][]int32{ids})})
			if err != nil {
				t.Fatal(err)
			}
			means := f.Means[0]
			if len(means) != len(p.Hidden.HF.MeanNorm) {
				t.Fatalf("%d boundaries, want %d", len(means), len(p.Hidden.HF.MeanNorm))
			}
			for l, row := range means {
				var norm float64
				for _, x := range row {
					norm += x * x
				}
				norm = math.Sqrt(norm)
				if rel := math.Abs(norm-p.Hidden.HF.MeanNorm[l]) / p.Hidden.HF.MeanNorm[l]; rel > 1e-4 {
					t.Errorf("boundary %d: mean residual norm %g, transformers %g", l, norm, p.Hidden.HF.MeanNorm[l])
				}
				for d, want := range p.Hidden.HF.MeanFirst8[l] {
					if math.Abs(row[d]-want) > 1e-3 {
						t.Errorf("boundary %d dim %d: %g, transformers %g", l, d, row[d], want)
					}
				}
			}
		})
	}
}
