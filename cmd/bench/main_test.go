package main

import (
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
