package runs

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/refusalkit/refusalkit/internal/testutil"
	"github.com/refusalkit/refusalkit/refusalkit"
)

// The same seed, backend and dtype give byte-identical files whatever else
// the machine runs: an extraction made beside processes that keep every
// core busy writes the same vector files and responses as one made on a
// quiet machine (the thread pool's timing must not reach the numbers).
func TestExtractionBytesUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("extracts with the bundled model twice")
	}
	m := testutil.BundledModel(t)
	cfg := refusalkit.ExtractConfig{NSamples: 3, GenerateConfig: refusalkit.GenerateConfig{
		NCompletions: 4, MaxNewTokens: 24, RefusalInstructions: []string{refusalkit.DeclineInstruction}}}
	extractTo := func(dir string) {
		t.Helper()
		run, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer run.Close()
		if _, err := run.Extract(m, cfg); err != nil {
			t.Fatal(err)
		}
	}
	quiet, loaded := filepath.Join(t.TempDir(), "quiet"), filepath.Join(t.TempDir(), "loaded")
	start := time.Now()
	extractTo(quiet)
	quietS := time.Since(start).Seconds()

	// Twice as many busy processes as cores, for the whole second extraction.
	ctx, stop := context.WithCancel(context.Background())
	for range 2 * runtime.NumCPU() {
		hog := exec.CommandContext(ctx, "sh", "-c", "while :; do :; done")
		if err := hog.Start(); err != nil {
			t.Fatal(err)
		}
		defer hog.Wait()
	}
	start = time.Now()
	extractTo(loaded)
	stop()
	// What the load did to the run, for the log: it must have slowed it.
	t.Logf("extraction %.1f s quiet, %.1f s beside %d busy processes", quietS, time.Since(start).Seconds(), 2*runtime.NumCPU())

	for _, name := range []string{VectorSafetensorsFile, VectorPTFile, RefusalResponsesFile, CompliantResponsesFile,
		FilteredRefusalResponsesFile, FilteredCompliantResponsesFile} {
		a, errA := os.ReadFile(filepath.Join(quiet, name))
		b, errB := os.ReadFile(filepath.Join(loaded, name))
		if errA != nil || errB != nil {
			t.Fatalf("%s: %v %v", name, errA, errB)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the quiet and the loaded run", name)
		}
	}
}
