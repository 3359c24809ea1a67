package models

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// The conformance suite: tiny random-weight checkpoints of every family,
// made by transformers and converted to GGUF by llama.cpp's own converter
// (tools/reference/make_families.py), with transformers' logits at every
// position and its greedy continuation.
const familiesDir = "../testdata/reference/families"

type familyCase struct {
	Name   string `json:"name"`
	Family string `json:"family"`
	Dir    string `json:"dir"`
	HF     string `json:"hf"`
	GGUF   string `json:"gguf"`
	// GGUFReference names the logits a GGUF is compared with when they
	// differ from the folder's (llama.cpp's own convention differs).
	GGUFLogits string `json:"gguf_logits"`
}

type familyReference struct {
	Sequences []struct {
		InputIDs  []int32 `json:"input_ids"`
		GreedyIDs []int32 `json:"greedy_ids"`
	} `json:"sequences"`
	GGUF struct {
		Sequences []struct {
			GreedyIDs []int32 `json:"greedy_ids"`
		} `json:"sequences"`
	} `json:"gguf"`
}

// readF32Safetensors reads the float32 tensors of a safetensors file.
func readF32Safetensors(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(data)
	var header map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	body := data[8+n:]
	out := map[string][]float32{}
	for name, raw := range header {
		if name == "__metadata__" {
			continue
		}
		var info struct {
			DType   string `json:"dtype"`
			Offsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &info); err != nil || info.DType != "F32" {
			t.Fatalf("%s: tensor %s is not F32 (%v)", path, name, err)
		}
		vals := make([]float32, (info.Offsets[1]-info.Offsets[0])/4)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[info.Offsets[0]+4*i:]))
		}
		out[name] = vals
	}
	return out
}

// familyCases reads the suite's manifest.
func familyCases(t *testing.T) []familyCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(familiesDir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		Cases []familyCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &manifest); err != nil {
		t.Fatal(err)
	}
	return manifest.Cases
}

// readFamilyReference reads a case's reference.json.
func readFamilyReference(t *testing.T, dir string) familyReference {
	t.Helper()
	var ref familyReference
	data, err := os.ReadFile(filepath.Join(dir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestFamiliesMatchTransformers(t *testing.T) {
	backend, err := NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	for _, fc := range familyCases(t) {
		dir := filepath.Join("..", fc.Dir)
		ref := readFamilyReference(t, dir)
		logits := readF32Safetensors(t, filepath.Join(dir, "logits.safetensors"))
		formats := []struct{ name, path, logits string }{{"hf", filepath.Join("..", fc.HF), ""}}
		if fc.GGUF != "" {
			formats = append(formats, struct{ name, path, logits string }{"gguf", filepath.Join("..", fc.GGUF), fc.GGUFLogits})
		}
		for _, f := range formats {
			t.Run(fc.Name+"/"+f.name, func(t *testing.T) {
				m, err := Load(f.path, backend)
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				for _, w := range m.Warnings {
					t.Errorf("unexpected warning: %s", w)
				}
				want := logits
				if f.logits != "" {
					want = readF32Safetensors(t, filepath.Join(dir, f.logits))
				}
				V := m.Config.VocabSize
				for si, seq := range ref.Sequences {
					// Every prefix in one left-padded batch: the logits at every position.
					prefixes := make([][]int32, len(seq.InputIDs))
					for p := range prefixes {
						prefixes[p] = seq.InputIDs[:p+1]
					}
					fw, err := m.Forward(prefixes, ForwardOptions{})
					if err != nil {
						t.Fatal(err)
					}
					wantSeq := want[fmt.Sprintf("seq%d", si)]
					worst, at := 0.0, 0
					for p := range prefixes {
						for v := range V {
							if d := math.Abs(float64(fw.Logits[p][v] - wantSeq[p*V+v])); d > worst {
								worst, at = d, p
							}
						}
					}
					if worst > 1e-4 {
						t.Errorf("sequence %d: logits differ from transformers by up to %.3g (position %d of %d)", si, worst, at, len(prefixes))
					}
					t.Logf("sequence %d: max |Δlogit| %.2g over %d positions", si, worst, len(prefixes))

					greedy := seq.GreedyIDs
					if f.name == "gguf" && f.logits != "" && si < len(ref.GGUF.Sequences) {
						greedy = ref.GGUF.Sequences[si].GreedyIDs
					}
					g, err := m.GenerateIDs([][]int32{seq.InputIDs}, GenerateOptions{MaxNewTokens: len(greedy), IgnoreStop: true})
					if err != nil {
						t.Fatal(err)
					}
					if !equalIDs(g.Tokens[0], greedy) {
						t.Errorf("sequence %d: greedy %v, transformers %v", si, g.Tokens[0], greedy)
					}
				}
			})
		}
	}
}
