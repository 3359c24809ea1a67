package refusalkit

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The same seed, settings and backend give byte-identical vectors and
// response files (metadata differs only in its timings).
func TestRunsAreByteIdentical(t *testing.T) {
	m := tinyModel(t)
	cfg := DefaultExtractConfig("tiny")
	cfg.NSamples = 3
	cfg.GenerateConfig = smallGenerateConfig()
	save := func() string {
		x, err := Extract(m, cfg, nil)
		if x == nil {
			t.Fatal(err)
		}
		// The tiny model never refuses; stand in the kept sets so a vector is written.
		x.FilteredRefusal, x.FilteredCompliant = x.Refusal[:4], x.Compliant[:5]
		if x.Vector, err = ComputeRefusalVector(m.Alias(), x.FilteredRefusal, x.FilteredCompliant); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := SaveExtraction(dir, m, x); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	a, b := save(), save()
	for _, name := range []string{CompliantResponsesFile, RefusalResponsesFile, FilteredCompliantResponsesFile,
		FilteredRefusalResponsesFile, VectorPTFile, VectorSafetensorsFile} {
		da, err := os.ReadFile(filepath.Join(a, name))
		if err != nil {
			t.Fatal(err)
		}
		db, _ := os.ReadFile(filepath.Join(b, name))
		if !bytes.Equal(da, db) {
			t.Errorf("%s differs between two runs with the same seed", name)
		}
	}
	// A different seed changes the responses: the comparison is not vacuous.
	cfg.Seed++
	c := save()
	da, _ := os.ReadFile(filepath.Join(a, CompliantResponsesFile))
	dc, _ := os.ReadFile(filepath.Join(c, CompliantResponsesFile))
	if bytes.Equal(da, dc) {
		t.Errorf("another seed gave the same responses")
	}
}
