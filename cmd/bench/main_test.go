package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/refusalkit/refusalkit/models"
)

// The bench's own code paths, every one that `make bench` runs but
// transformers' (W0 as built, capture overhead, the naive extraction and
// layer sweep, the auto batch), end to end at a tiny scale on the tiny
// random model: a README command must not crash after timing for minutes.
func TestBenchPathsAtTinyScale(t *testing.T) {
	if err := run(models.TinyRandomModel, 0.1, "go", false, false, "none"); err != nil {
		t.Fatal(err)
	}
}

// The side-by-side rounds (transformers here a stand-in script printing
// fixed phases): every round runs, and each phase reported is the minimum.
func TestBenchRoundsKeepTheMinimum(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "python")
	script := "#!/bin/sh\necho '{\"seconds\": {\"load\": 1, \"generation\": 2, \"activations\": 0, \"layer_selection\": 3, \"validation_side_effects\": 4, \"coefficient_sweep\": 5, \"total\": 15}, \"versions\": {}, \"threads\": 2}'\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	defer func(r int) { rounds = r }(rounds)
	rounds = 3
	if err := run(models.TinyRandomModel, 0.1, "go", true, true, fake); err != nil {
		t.Fatal(err)
	}
	got := minPhases(map[string]float64{"load": 2, "generation": 5, "activations": 1, "layer_selection": 1, "validation_side_effects": 1, "coefficient_sweep": 1},
		map[string]float64{"load": 1, "generation": 6, "activations": 1, "layer_selection": 2, "validation_side_effects": 0.5, "coefficient_sweep": 1})
	if got["load"] != 1 || got["generation"] != 5 || got["extraction"] != 7 || got["evaluation"] != 2.5 || got["total"] != 9.5 {
		t.Errorf("minPhases: %v", got)
	}
}
