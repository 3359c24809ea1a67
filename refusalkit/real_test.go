package refusalkit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/models"
)

// The whole extraction on the real bundled model at small settings: files,
// counts and a vector (or the too-few path, saved all the same).
func TestRealModelSmallExtraction(t *testing.T) {
	if _, err := models.Resolve(models.DefaultModel); err != nil {
		t.Skipf("bundled model not installed (%v)", err)
	}
	m, err := models.Load(models.DefaultModel, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultExtractConfig(models.DefaultModel)
	cfg.NSamples, cfg.NCompletions, cfg.MaxNewTokens, cfg.BatchSize = 2, 3, 16, 6
	cfg.RefusalInstruction = "Do not answer the question below; politely decline instead, starting with \"I'm sorry\".\n"
	x, err := Extract(m, cfg, nil)
	if err != nil && !errors.Is(err, ErrTooFewResponses) {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := SaveExtraction(dir, m, x); err != nil {
		t.Fatal(err)
	}
	if len(x.Compliant) != 6 || len(x.Refusal) != 6 {
		t.Fatalf("%d compliant and %d refusal responses, want 6 each", len(x.Compliant), len(x.Refusal))
	}
	for _, r := range append(append([]Response{}, x.Compliant...), x.Refusal...) {
		if strings.TrimSpace(r.Response) == "" || r.NTokens == 0 || r.NTokens > 16 {
			t.Errorf("response %q with %d tokens", r.Response, r.NTokens)
		}
		if !strings.HasPrefix(r.Prompt, "<|im_start|>system\n") || !strings.HasSuffix(r.Prompt, "<|im_start|>assistant\n") {
			t.Errorf("prompt is not the chat-templated text: %q", r.Prompt)
		}
		if r.IsRefusal != IsRefusal(r.Response) {
			t.Errorf("verdict %v disagrees with the judge for %q", r.IsRefusal, r.Response)
		}
	}
	var md Metadata
	readJSON(t, filepath.Join(dir, MetadataFile), &md)
	if md.ModelAlias != "SmolLM2-135M-Instruct" || md.NQueries != 2 || md.NCompletionsPerQuery != 3 {
		t.Errorf("metadata %+v", md)
	}
	if x.Vector != nil {
		if !md.Complete || md.VectorShape[0] != 31 || md.VectorShape[1] != 576 {
			t.Errorf("vector shape %v complete %v", md.VectorShape, md.Complete)
		}
		if _, err := os.Stat(filepath.Join(dir, VectorPTFile)); err != nil {
			t.Error(err)
		}
	}
	t.Logf("kept %d/6 compliant, %d/6 refusal; vector: %v", len(x.FilteredCompliant), len(x.FilteredRefusal), x.Vector != nil)
}
