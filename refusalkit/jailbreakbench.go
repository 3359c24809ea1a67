package refusalkit

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
)

// jbbJSONL holds JailbreakBench's 100 harmful behaviours, one
// {"instruction": ..., "category": ...} a line. Source, licence (MIT) and
// attribution are in data/NOTICE.md.
//
//go:embed data/jailbreakbench_behaviors.jsonl
var jbbJSONL []byte

// JailbreakBenchSource names the embedded harmful requests, for metadata files.
const JailbreakBenchSource = "JailbreakBench JBB-Behaviors (Chao et al. 2024), 100 harmful behaviours, MIT"

// Behavior is one JailbreakBench harmful request.
type Behavior struct {
	Instruction string `json:"instruction"`
	Category    string `json:"category"`
}

// LoadJailbreakBench returns the embedded JailbreakBench behaviours, in the
// dataset's order.
func LoadJailbreakBench() ([]Behavior, error) {
	var out []Behavior
	for i, line := range bytes.Split(bytes.TrimSpace(jbbJSONL), []byte("\n")) {
		var b Behavior
		if err := json.Unmarshal(line, &b); err != nil || b.Instruction == "" {
			return nil, fmt.Errorf("embedded JailbreakBench data, line %d: %v; the package was built with a corrupt data/jailbreakbench_behaviors.jsonl, rebuild it", i+1, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// HarmfulInstructions returns the JailbreakBench requests' texts.
func HarmfulInstructions() ([]string, error) {
	bs, err := LoadJailbreakBench()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Instruction
	}
	return out, nil
}

// MustHarmfulInstructions is HarmfulInstructions for notebooks.
func MustHarmfulInstructions() []string {
	out, err := HarmfulInstructions()
	if err != nil {
		panic(err)
	}
	return out
}
