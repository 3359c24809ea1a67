package models

import "testing"

// Stats counts what was run: a generation's decoding steps and the prompt
// padding of its prefill, no new compilation for a shape already compiled,
// and one pass per teacher-forced comparison.
func TestStats(t *testing.T) {
	m := newTinyForTest(t, TinyConfig())
	prompts := [][]int32{{5, 9, 17, 3, 44, 8}, {12, 7, 7, 30}, {3, 3, 9}}
	opts := GenerateOptions{MaxNewTokens: 5}

	before := m.Stats()
	gen, err := m.GenerateIDs(prompts, opts)
	if err != nil {
		t.Fatal(err)
	}
	first := m.Stats().Sub(before)
	if first.DecodeSteps != gen.Steps {
		t.Errorf("decode steps counted %d, the generation ran %d", first.DecodeSteps, gen.Steps)
	}
	if first.Prefills != 1 {
		t.Errorf("prefills counted %d, want 1", first.Prefills)
	}
	P := bucket(6, promptBucket)
	if want := 3 * P; first.PrefillPositions != want {
		t.Errorf("prefill positions %d, want %d (3 rows of %d)", first.PrefillPositions, want, P)
	}
	if want := (P - 6) + (P - 4) + (P - 3); first.PrefillPadding != want {
		t.Errorf("prefill padding %d, want %d (the rows' left pads)", first.PrefillPadding, want)
	}
	if first.DecodeIdle < 0 || first.DecodeIdle > first.DecodeRows || first.DecodeRows < first.DecodeSteps {
		t.Errorf("decode rows %d, idle %d over %d steps: inconsistent", first.DecodeRows, first.DecodeIdle, first.DecodeSteps)
	}
	if first.Compilations == 0 || first.CompileTime <= 0 {
		t.Errorf("a first generation counted %d compilations in %v", first.Compilations, first.CompileTime)
	}
	if first.ToHostBytes <= 0 || first.Runs == 0 {
		t.Errorf("a generation copied %d bytes to the host over %d runs", first.ToHostBytes, first.Runs)
	}

	before = m.Stats()
	if _, err := m.GenerateIDs(prompts, opts); err != nil {
		t.Fatal(err)
	}
	if again := m.Stats().Sub(before); again.Compilations != 0 || again.DecodeSteps != first.DecodeSteps {
		t.Errorf("the same generation again: %d compilations (want 0), %d decode steps (want %d)",
			again.Compilations, again.DecodeSteps, first.DecodeSteps)
	}

	vec := make([]float32, m.Config.DModel)
	vec[0] = 1
	seqs := [][]int32{{5, 9, 17, 3, 44, 8}, {12, 7, 7, 30}}
	before = m.Stats()
	ref, err := m.NewReference(seqs, []int{2, 1}, ReferenceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for _, c := range []float32{1, 2} {
		if _, err := ref.Compare(ForwardOptions{Steer: []Steering{{Layer: 1, Coeff: c, Vector: vec}}}); err != nil {
			t.Fatal(err)
		}
	}
	if passes := m.Stats().Sub(before); passes.Passes != 3 || passes.PassPadding <= 0 || passes.PassPadding >= passes.PassPositions {
		t.Errorf("a reference and two comparisons: %d passes (want 3), padding %d of %d positions",
			passes.Passes, passes.PassPadding, passes.PassPositions)
	}
}
