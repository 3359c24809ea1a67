package refusalkit

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/refusalkit/refusalkit/models"
)

func tinyModel(t *testing.T) *models.Model {
	t.Helper()
	b, err := models.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	m, err := models.NewTiny(models.TinyConfig(), 7, b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func smallGenerateConfig() GenerateConfig {
	cfg := DefaultGenerateConfig()
	cfg.NCompletions, cfg.MaxNewTokens, cfg.BatchSize = 3, 6, 4
	return cfg
}

// The vector must equal mean(refusal) − mean(compliant) of activations
// recomputed by a separate forward pass over prompt + response.
func TestVectorIsDifferenceOfRecomputedMeans(t *testing.T) {
	m := tinyModel(t)
	queries := []string{"first question", "a second, longer question", "third"}
	rs, err := GenerateResponses(m, queries, ModeCompliant, smallGenerateConfig())
	if err != nil {
		t.Fatal(err)
	}
	// The tiny model never writes a refusal phrase, so split its responses
	// by hand into two groups standing in for the kept sets.
	var groupA, groupB []Response
	for i, r := range rs {
		if r.Means == nil {
			t.Fatalf("response %d has no captured activations", i)
		}
		if i%2 == 0 {
			groupA = append(groupA, r)
		} else {
			groupB = append(groupB, r)
		}
	}
	v, err := ComputeRefusalVector(m.Alias(), groupA, groupB)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Data) != m.Config.NumLayers+1 || v.DModel != m.Config.DModel {
		t.Fatalf("vector shape [%d, %d], want [%d, %d]", len(v.Data), v.DModel, m.Config.NumLayers+1, m.Config.DModel)
	}
	recompute := func(g []Response) [][]float64 {
		cp := make([]Response, len(g))
		copy(cp, g)
		for i := range cp {
			cp[i].Means = nil
		}
		if err := ExtractResponseActivations(m, cp, 1, true); err != nil {
			t.Fatal(err)
		}
		mean, _ := meanOfMeans(cp)
		return mean
	}
	a, b := recompute(groupA), recompute(groupB)
	for l := range v.Data {
		for d := range v.Data[l] {
			if diff := math.Abs(float64(v.Data[l][d]) - (a[l][d] - b[l][d])); diff > 1e-4 {
				t.Fatalf("boundary %d dim %d: vector %g, recomputed difference %g", l, d, v.Data[l][d], a[l][d]-b[l][d])
			}
		}
	}
}

// An extraction where one side keeps nothing still saves every response
// file and the metadata, and says so in its error.
func TestExtractionKeepsEverythingWhenFilteringLeavesTooFew(t *testing.T) {
	m := tinyModel(t)
	cfg := DefaultExtractConfig("tiny")
	cfg.NSamples = 2
	cfg.GenerateConfig = smallGenerateConfig()
	x, err := Extract(m, cfg, nil)
	if !errors.Is(err, ErrTooFewResponses) {
		t.Fatalf("want ErrTooFewResponses (the tiny model never refuses), got %v", err)
	}
	dir := t.TempDir()
	if err := SaveExtraction(dir, m, x); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{CompliantResponsesFile, RefusalResponsesFile, FilteredCompliantResponsesFile, FilteredRefusalResponsesFile, MetadataFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("missing %s", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, VectorPTFile)); err == nil {
		t.Errorf("%s written without a vector", VectorPTFile)
	}
	var all []Response
	readJSON(t, filepath.Join(dir, RefusalResponsesFile), &all)
	if len(all) != 2*3 {
		t.Errorf("refusal_responses.json holds %d responses, want 6", len(all))
	}
	var md map[string]any
	readJSON(t, filepath.Join(dir, MetadataFile), &md)
	if md["complete"] != false {
		t.Errorf("metadata complete = %v, want false", md["complete"])
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// The six files of a complete run, with the spec's fields.
func TestSavedRunSchema(t *testing.T) {
	m := tinyModel(t)
	cfg := DefaultExtractConfig("tiny")
	cfg.NSamples = 2
	cfg.GenerateConfig = smallGenerateConfig()
	queries := []string{"q one", "q two"}
	comp, err := GenerateResponses(m, queries, ModeCompliant, cfg.GenerateConfig)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := GenerateResponses(m, queries, ModeRefusal, cfg.GenerateConfig)
	if err != nil {
		t.Fatal(err)
	}
	x := &Extraction{Config: cfg, Queries: queries, Compliant: comp, Refusal: ref,
		FilteredCompliant: comp[:4], FilteredRefusal: ref[:3], Timings: map[string]float64{}}
	if x.Vector, err = ComputeRefusalVector(m.Alias(), x.FilteredRefusal, x.FilteredCompliant); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := SaveExtraction(dir, m, x); err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	readJSON(t, filepath.Join(dir, MetadataFile), &md)
	for _, key := range []string{"n_queries", "n_completions_per_query", "n_compliant_responses_generated", "n_refusal_responses_generated",
		"n_compliant_responses_kept", "n_refusal_responses_kept", "compliant_filter_rate", "refusal_filter_rate", "seed", "vector_shape",
		"model_path", "model_alias", "refusal_instruction", "backend", "dtype", "versions", "timings_seconds"} {
		if _, ok := md[key]; !ok {
			t.Errorf("metadata.json lacks %q", key)
		}
	}
	if md["n_compliant_responses_kept"].(float64) != 4 || md["compliant_filter_rate"].(float64) != 4.0/6 {
		t.Errorf("kept counts/rates wrong: %v %v", md["n_compliant_responses_kept"], md["compliant_filter_rate"])
	}
	shape := md["vector_shape"].([]any)
	if int(shape[0].(float64)) != m.Config.NumLayers+1 || int(shape[1].(float64)) != m.Config.DModel {
		t.Errorf("vector_shape %v", shape)
	}
	var rs []map[string]any
	readJSON(t, filepath.Join(dir, FilteredRefusalResponsesFile), &rs)
	if len(rs) != 3 {
		t.Fatalf("filtered refusal file holds %d entries, want 3", len(rs))
	}
	for _, key := range []string{"instruction", "prompt", "response", "mode", "query_index", "completion_index", "n_tokens", "is_refusal"} {
		if _, ok := rs[0][key]; !ok {
			t.Errorf("response entry lacks %q", key)
		}
	}
	if rs[0]["mode"] != "refusal" {
		t.Errorf("mode %v", rs[0]["mode"])
	}
	// The prompt is the full templated text, with the refusal instruction inside.
	if p := rs[0]["prompt"].(string); !contains(p, "<|im_start|>user\n"+DefaultRefusalInstruction+"q one") {
		t.Errorf("prompt %q lacks the templated refusal instruction", p)
	}
	back, err := LoadRefusalVector(dir)
	if err != nil {
		t.Fatal(err)
	}
	for l := range back.Data {
		for d := range back.Data[l] {
			if back.Data[l][d] != x.Vector.Data[l][d] {
				t.Fatalf("safetensors round trip changed [%d][%d]", l, d)
			}
		}
	}
}

func contains(s, sub string) bool { return len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0) }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// Sampling is per (mode, query, completion): the batch size changes nothing.
func TestGenerationIndependentOfBatchSize(t *testing.T) {
	m := tinyModel(t)
	queries := []string{"alpha", "beta"}
	a := smallGenerateConfig()
	b := a
	b.BatchSize = 1
	ra, err := GenerateResponses(m, queries, ModeRefusal, a)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := GenerateResponses(m, queries, ModeRefusal, b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ra {
		if ra[i].Response != rb[i].Response {
			t.Errorf("response %d differs between batch sizes 4 and 1: %q vs %q", i, ra[i].Response, rb[i].Response)
		}
	}
}
