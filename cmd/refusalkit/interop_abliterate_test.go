//go:build interop

// llama.cpp runs the GGUF `refusalkit abliterate` writes (make interop-check):
// its first-token logits are refusalkit's with the direction ablated at run
// time, within the difference llama.cpp's quantised compute already has on
// the source; they are not the source's; and its greedy replies, read by
// refusalkit with the direction ablated, take tokens within that difference
// of refusalkit's top logit.
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
)

func TestInteropAbliterated(t *testing.T) {
	bin, dir, modelFile, v := interopSetup(t)
	layer := v.NLayers / 2
	if l, _, ok := selectedLayer(dir); ok {
		layer = l
	}
	row, _, err := refusalkit.AblationDirection(v, layer)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "abliterated")
	if code, stderr := runCaptured(t, "abliterate", "--model_path", models.DefaultModel, "--vector_dir", dir,
		"--layer", strconv.Itoa(layer), "--out", out); code != 0 {
		t.Fatalf("abliterate: exit %d: %s", code, stderr)
	}
	written := filepath.Join(out, "abliterated.gguf")

	m, err := models.Load(models.DefaultModel, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	prompts := make([][]int32, len(interopPrompts))
	for i, p := range interopPrompts {
		if _, prompts[i], err = m.EncodePrompt(p); err != nil {
			t.Fatal(err)
		}
	}
	ablation := models.ForwardOptions{Ablate: row}
	plain, err := m.Forward(prompts, models.ForwardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ablated, err := m.Forward(prompts, ablation)
	if err != nil {
		t.Fatal(err)
	}
	var srcJobs, ablJobs []llamaJob
	for _, p := range prompts {
		srcJobs = append(srcJobs, llamaJob{p, "", 0})
		ablJobs = append(ablJobs, llamaJob{p, "", 0})
	}
	src := runLlamaCpp(t, bin, modelFile, srcJobs)
	abl := runLlamaCpp(t, bin, written, ablJobs)
	var maxSrc, maxAbl, minMoved = 0.0, 0.0, math.Inf(1)
	for i := range prompts {
		maxSrc = math.Max(maxSrc, maxAbsDiff(src[i].logits, plain.Logits[i]))
		maxAbl = math.Max(maxAbl, maxAbsDiff(abl[i].logits, ablated.Logits[i]))
		minMoved = math.Min(minMoved, maxAbsDiff(abl[i].logits, plain.Logits[i]))
	}
	tol := 2 * maxSrc // as TestInteropLlamaCpp: llama.cpp's own difference on the source, doubled
	gaps := teacherForcedGaps(t, m, prompts, ablation, func(i int) []int32 { return abl[i].tokens })
	worst := 0.0
	for _, g := range gaps {
		worst = math.Max(worst, g)
	}
	summary := map[string]any{"layer": layer, "max_abs_logit_diff_source": maxSrc, "max_abs_logit_diff_abliterated_vs_runtime_ablation": maxAbl,
		"min_abs_logit_diff_abliterated_vs_source_unablated": minMoved, "tolerance": tol, "max_reply_token_gap": worst}
	js, _ := json.MarshalIndent(summary, "", "  ")
	t.Logf("%s", js)
	if p := os.Getenv("REFUSALKIT_INTEROP_OUT"); p != "" {
		_ = os.WriteFile(filepath.Join(filepath.Dir(p), "interop_abliterated.json"), js, 0o644)
	}
	fmt.Printf("interop: llama.cpp on the abliterated GGUF (row %d): max |Δlogit| against runtime ablation %.4f (tolerance %.4f, 2 × the source's %.4f); against the source unablated ≥ %.4f; greedy replies' worst token %.4f below refusalkit's top logit\n",
		layer, maxAbl, tol, maxSrc, minMoved, worst)
	if maxAbl > tol {
		t.Errorf("llama.cpp's logits on the abliterated GGUF differ from runtime ablation by %.4f, past the tolerance %.4f", maxAbl, tol)
	}
	if minMoved <= tol {
		t.Errorf("llama.cpp's logits on the abliterated GGUF are within %.4f of the source unablated (tolerance %.4f): the check cannot tell", minMoved, tol)
	}
	if worst > tol {
		t.Errorf("llama.cpp's greedy replies on the abliterated GGUF take a token %.4f below refusalkit's top logit with the direction ablated, past the tolerance %.4f", worst, tol)
	}
}
