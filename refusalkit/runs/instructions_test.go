package runs

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/refusalkit/refusalkit/internal/testutil"
	"github.com/refusalkit/refusalkit/refusalkit"
)

// A run with several refusal instructions records them in order, with
// per-instruction counts that add up to the totals, and reads back with
// the same configuration.
func TestMetadataPerRefusalInstruction(t *testing.T) {
	m := testutil.TinyModel(t)
	instrs := []string{"First refuse.\n", "Second refuse.\n"}
	cfg := refusalkit.ExtractConfig{NSamples: 2}
	cfg.GenerateConfig = smallGenerateConfig()
	cfg.RefusalInstructions = instrs
	queries := []string{"q one", "q two"}
	comp, err := refusalkit.GenerateResponses(m, queries, refusalkit.ModeCompliant, cfg.GenerateConfig)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := refusalkit.GenerateResponses(m, queries, refusalkit.ModeRefusal, cfg.GenerateConfig)
	if err != nil {
		t.Fatal(err)
	}
	// The tiny model never refuses: stand in a kept set (rows 0, 1, 3: completions 0, 1 and 0).
	kept := []refusalkit.Response{ref[0], ref[1], ref[3]}
	x := &refusalkit.Extraction{Config: cfg, Queries: queries, Compliant: comp, Refusal: ref,
		FilteredCompliant: comp[:4], FilteredRefusal: kept, Timings: map[string]float64{}}
	if x.Vector, err = refusalkit.ComputeRefusalVector(m.Alias(), x.FilteredRefusal, x.FilteredCompliant); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	saveExtraction(t, dir, m, x)
	var md Metadata
	testutil.ReadJSON(t, filepath.Join(dir, MetadataFile), &md)
	if md.RefusalInstruction != instrs[0] || len(md.RefusalInstructions) != 2 || md.RefusalInstructions[1] != instrs[1] {
		t.Fatalf("recorded %q and %q, want the first and %q", md.RefusalInstruction, md.RefusalInstructions, instrs)
	}
	want := []InstructionKept{{0, 4, 2, 0.5}, {1, 2, 1, 0.5}} // 3 completions: 0 and 2 use instruction 0
	gen, kp := 0, 0
	for i, k := range md.RefusalKeptByInstruction {
		if i >= len(want) || k != want[i] {
			t.Errorf("instruction %d: %+v, want %+v", i, k, want)
		}
		gen, kp = gen+k.Generated, kp+k.Kept
	}
	if gen != md.NRefusalResponsesGenerated || kp != md.NRefusalResponsesKept {
		t.Errorf("per-instruction counts %d generated, %d kept; totals %d and %d", gen, kp, md.NRefusalResponsesGenerated, md.NRefusalResponsesKept)
	}
	back, err := ReadExtraction(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Config.RefusalInstructions; len(got) != 2 || got[0] != instrs[0] || got[1] != instrs[1] {
		t.Errorf("read back %q", got)
	}
	if back.FilteredRefusal[2].InstructionIndex() != 0 || back.Refusal[1].InstructionIndex() != 1 {
		t.Errorf("instruction indices not read back")
	}

	// Metadata written before runs had several instructions reads as its one instruction.
	old := Metadata{RefusalInstruction: "Old.\n", NQueries: 2, Sampling: map[string]float64{}}
	if got := old.config().RefusalInstructions; len(got) != 1 || got[0] != "Old.\n" {
		t.Errorf("old metadata reads as %q", got)
	}
}

// The settings digest covers every refusal instruction, in order; one
// instruction is recorded as before.
func TestSettingsCoverEveryRefusalInstruction(t *testing.T) {
	m := testutil.TinyModel(t)
	value := func(instrs ...string) (string, string) {
		cfg := refusalkit.ExtractConfig{NSamples: 2, GenerateConfig: refusalkit.GenerateConfig{NCompletions: 2, RefusalInstructions: instrs}}
		s, err := ExtractSettings(m, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range s {
			if e.Name == "refusal_instruction" {
				return e.Value, s.Digest()
			}
		}
		t.Fatal("no refusal_instruction setting")
		return "", ""
	}
	if v, _ := value(); v != strconv.Quote(refusalkit.DefaultRefusalInstruction) {
		t.Errorf("one instruction recorded as %s", v)
	}
	ab, dab := value("A.\n", "B.\n")
	_, dba := value("B.\n", "A.\n")
	_, da := value("A.\n")
	if ab != `"A.\n", "B.\n"` || dab == dba || dab == da {
		t.Errorf("settings %s: digest blind to the instructions or their order", ab)
	}
}
