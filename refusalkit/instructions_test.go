package refusalkit

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/internal/testutil"
	"github.com/refusalkit/refusalkit/models"
)

// tracer records the prompts and row seeds GenerateResponses sends, batch by batch.
type tracer struct {
	m       *models.Model
	prompts [][]int32
	seeds   []uint64
}

func (tr *tracer) generate(prompts [][]int32, opts models.GenerateOptions) (*models.Generation, error) {
	tr.prompts = append(tr.prompts, prompts...)
	tr.seeds = append(tr.seeds, opts.RowSeeds...)
	return tr.m.GenerateIDs(prompts, opts)
}

// One refusal instruction is the spec's single-instruction run: each
// refusal-mode row sends the refusal instruction followed by the query, with
// the seed RowSeed("refusal", q, c) (the scheme is pinned by one value), and
// no instruction index is written; nil, the default spelled out and ""
// give the same responses.
func TestOneRefusalInstructionIsTheSpecRun(t *testing.T) {
	if got := RowSeed("refusal", 0, 0); got != 0x41ee5e19436d6f57 {
		t.Fatalf("RowSeed(refusal, 0, 0) = %#x: the seeding scheme changed", got)
	}
	m := testutil.TinyModel(t)
	queries := []string{"alpha", "beta"}
	var files [][]byte
	for _, instrs := range [][]string{nil, {DefaultRefusalInstruction}, {""}} {
		cfg := smallGenerateConfig()
		cfg.RefusalInstructions = instrs
		tr := &tracer{m: m}
		rs, err := GenerateResponses(m, queries, ModeRefusal, cfg, WithGenerator(tr.generate))
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rs {
			_, ids, err := m.EncodePrompt(DefaultRefusalInstruction + queries[r.QueryIndex])
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tr.prompts[i], ids) || tr.seeds[i] != RowSeed("refusal", r.QueryIndex, r.CompletionIndex) {
				t.Errorf("%q: row %d sent another prompt or seed than the single-instruction run", instrs, i)
			}
			if r.RefusalInstructionIndex != nil {
				t.Errorf("%q: row %d records an instruction index", instrs, i)
			}
		}
		b, _ := json.Marshal(rs)
		if strings.Contains(string(b), "refusal_instruction_index") {
			t.Errorf("%q: the responses carry refusal_instruction_index", instrs)
		}
		files = append(files, b)
	}
	for i := 1; i < len(files); i++ {
		if string(files[i]) != string(files[0]) {
			t.Errorf("responses %d differ from the default's", i)
		}
	}
}

// Several refusal instructions: completion c of each query uses instruction
// c mod k, records its index, keeps its seed, and a compliant row has none.
func TestRefusalInstructionsSpreadOverCompletions(t *testing.T) {
	m := testutil.TinyModel(t)
	queries := []string{"alpha", "beta"}
	cfg := smallGenerateConfig()
	cfg.NCompletions = 5
	cfg.RefusalInstructions = []string{"First refuse.\n", "Second refuse.\n"}
	tr := &tracer{m: m}
	rs, err := GenerateResponses(m, queries, ModeRefusal, cfg, WithGenerator(tr.generate))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != len(queries)*cfg.NCompletions {
		t.Fatalf("%d responses, want %d", len(rs), len(queries)*cfg.NCompletions)
	}
	perInstr := map[int]int{}
	for i, r := range rs {
		want := r.CompletionIndex % 2
		if r.RefusalInstructionIndex == nil || *r.RefusalInstructionIndex != want || cfg.RefusalInstructionIndex(r.CompletionIndex) != want {
			t.Fatalf("row %d (completion %d): index %v, want %d", i, r.CompletionIndex, r.RefusalInstructionIndex, want)
		}
		if msg := cfg.RefusalInstructions[want] + r.Instruction; r.UserMessage != msg {
			t.Errorf("row %d: user message %q, want %q", i, r.UserMessage, msg)
		}
		_, ids, _ := m.EncodePrompt(r.UserMessage)
		if !slices.Equal(tr.prompts[i], ids) || !slices.Equal(r.PromptTokenIDs, ids) {
			t.Errorf("row %d: the prompt sent is not its user message's", i)
		}
		if tr.seeds[i] != RowSeed("refusal", r.QueryIndex, r.CompletionIndex) {
			t.Errorf("row %d: seed changed with several instructions", i)
		}
		perInstr[want]++
	}
	if perInstr[0] != 6 || perInstr[1] != 4 { // 2 queries × completions {0,2,4} and {1,3}
		t.Errorf("completions per instruction %v, want 6 and 4", perInstr)
	}
	b, _ := json.Marshal(rs[0])
	if !strings.Contains(string(b), `"refusal_instruction_index":0`) {
		t.Errorf("index 0 is not written: %s", b)
	}
	cs, err := GenerateResponses(m, queries[:1], ModeCompliant, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cs {
		if r.RefusalInstructionIndex != nil || r.UserMessage != queries[0] {
			t.Errorf("compliant row %d: index %v, user message %q", r.CompletionIndex, r.RefusalInstructionIndex, r.UserMessage)
		}
	}
}

// Lists that cannot make the run asked for are refused in one line:
// duplicates, a NUL byte in any instruction, fewer completions than
// instructions; ExtractPrompts lists every instruction's prompts.
func TestRefusalInstructionChecks(t *testing.T) {
	for _, c := range []struct {
		n      int
		instrs []string
		want   string
	}{
		{4, []string{"A.\n", "B.\n", "A.\n"}, `--refusal_instruction 3 repeats --refusal_instruction 1 ("A.\n")`},
		{4, []string{"", DefaultRefusalInstruction}, "--refusal_instruction 2 repeats --refusal_instruction 1"},
		{4, []string{"A.\n", "B\x00.\n"}, "--refusal_instruction 2 has a NUL byte at byte 1"},
		{2, []string{"A.\n", "B.\n", "C.\n"}, "--n_completions 2 is smaller than the 3 refusal instructions"},
	} {
		cfg := GenerateConfig{NCompletions: c.n, RefusalInstructions: c.instrs}
		err := cfg.CheckRefusalInstructions()
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q, n_completions %d: error %v, want one line with %q", c.instrs, c.n, err, c.want)
		}
		if _, err := ExtractPrompts(ExtractConfig{NSamples: 2, GenerateConfig: cfg}); err == nil {
			t.Errorf("%q: ExtractPrompts accepted it", c.instrs)
		}
	}
	if err := (GenerateConfig{NCompletions: 2, RefusalInstructions: []string{"A.\n", "B.\n"}}).CheckRefusalInstructions(); err != nil {
		t.Errorf("two instructions, two completions: %v", err)
	}
	ps, err := ExtractPrompts(ExtractConfig{NSamples: 2, GenerateConfig: GenerateConfig{NCompletions: 2, RefusalInstructions: []string{"A.\n", "B.\n"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 6 || ps[1] != "A.\n"+ps[0] || ps[2] != "B.\n"+ps[0] {
		t.Errorf("prompts %q: want each query, then it after each instruction", ps)
	}
}
