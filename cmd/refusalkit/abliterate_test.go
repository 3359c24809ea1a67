package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/internal/testutil"
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/abliterate"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
	"github.com/refusalkit/refusalkit/refusalkit/tensorfile"
)

const familiesDir = "../../testdata/reference/families"

// familyVectorDir is a vector folder shaped for a tiny family checkpoint,
// made (per its metadata) with the model named alias.
func familyVectorDir(t *testing.T, checkpoint, alias string, provenance ...string) string {
	t.Helper()
	ck, err := models.ReadCheckpoint(checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	c := ck.Config
	rv := &refusalkit.RefusalVector{Model: alias, NLayers: c.NumLayers, DModel: c.DModel, Data: make([][]float32, c.NumLayers+1), Provenance: map[string]string{}}
	for i := 0; i+1 < len(provenance); i += 2 {
		rv.Provenance[provenance[i]] = provenance[i+1]
	}
	for i := range rv.Data {
		rv.Data[i] = make([]float32, c.DModel)
		for j := range rv.Data[i] {
			rv.Data[i][j] = float32((i+j)%7) - 3
		}
	}
	dir := filepath.Join(t.TempDir(), "vector")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := runs.SaveVector(dir, rv); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Everything abliterate cannot do is refused before a byte is written:
// exit 2, one exact line.
func TestAbliterateRefusedBeforeWork(t *testing.T) {
	qwen := filepath.Join(familiesDir, "qwen2", "model.gguf")
	gemma2 := filepath.Join(familiesDir, "gemma2", "hf")
	vec := familyVectorDir(t, qwen, "model")
	other := familyVectorDir(t, qwen, "another-model")
	fineTune := familyVectorDir(t, qwen, "model", "model_content", "size 1, sha256 0123456789abcdef of the first and last MiB")
	content, _ := refusalkit.ModelContent(qwen)
	gemmaVec := familyVectorDir(t, gemma2, "hf")
	evaluated := familyVectorDir(t, qwen, "model")
	if err := tensorfile.WriteJSONAtomic(filepath.Join(evaluated, runs.EvalSummaryFile), refusalkit.EvalSummary{SelectedLayer: 7}); err != nil {
		t.Fatal(err)
	}
	exists := filepath.Join(t.TempDir(), "exists")
	if err := os.Mkdir(exists, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	abl := func(model, dir string, args ...string) []string {
		return append([]string{"abliterate", "--model_path", model, "--vector_dir", dir, "--out", out}, args...)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"abliterate", "--model_path", qwen, "--vector_dir", vec}, "refusalkit abliterate: --model_path, --vector_dir and --out are required (see --help)"},
		{abl(qwen, vec, "--layer", "-1"), "refusalkit abliterate: --layer must be 0 or more, got -1"},
		{abl(qwen, vec, "--direction", "mean"), `refusalkit abliterate: --direction "mean": use vector or harmful_harmless`},
		{abl(qwen, vec), "refusalkit abliterate: --layer is required: " + vec + " holds no eval_summary.json to take the selected layer from (run `refusalkit evaluate` first, or give --layer)"},
		{abl(qwen, evaluated), "refusalkit abliterate: layer 7 is outside the refusal vector's layers 0..2: choose another layer (the selected_layer of " + filepath.Join(evaluated, runs.EvalSummaryFile) + ")"},
		{abl(qwen, vec, "--direction", "harmful_harmless", "--layer", "1"), "refusalkit abliterate: --direction harmful_harmless needs " + filepath.Join(vec, "harmful_harmless", runs.HarmfulHarmlessDirectionFile)},
		{abl(qwen, other, "--layer", "1"), `refusalkit abliterate: the vector in ` + other + ` was made with "another-model", not "model": abliterate the model it was extracted from`},
		{abl(qwen, fineTune, "--layer", "1"), "refusalkit abliterate: the vector in " + fineTune + " was made with other model files (size 1, sha256 0123456789abcdef of the first and last MiB) than " + qwen + "'s (" + content + "): abliterate the model it was extracted from"},
		{abl(gemma2, gemmaVec, "--layer", "1"), "refusalkit abliterate: model family gemma2 normalises each block's output before the residual add (post-norms): projecting a direction out of the weights does not remove it from the stream, so no exact abliterated checkpoint exists; use `refusalkit ablate`, which removes it at run time"},
		{abl(qwen, vec, "--layer", "1", "--format", "hf"), "refusalkit abliterate: --format hf needs a Hugging Face folder as the source; " + qwen + " is a GGUF: write --format gguf"},
		{[]string{"abliterate", "--model_path", qwen, "--vector_dir", vec, "--out", exists, "--layer", "1"}, "refusalkit abliterate: output folder " + exists + " exists: give --overwrite to replace it, or another --out"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args[len(c.args)-2:], " "), func(t *testing.T) {
			stderr := refusedBeforeWork(t, c.args, out)
			if !strings.HasPrefix(stderr, c.want) {
				t.Errorf("stderr %q, want %q", stderr, c.want)
			}
		})
	}
}

// A GGUF abliterated from the command line records where its direction
// came from, with the hashes of the source and the vector file.
func TestAbliterateRecordsProvenance(t *testing.T) {
	qwen := filepath.Join(familiesDir, "qwen2", "model.gguf")
	vec := familyVectorDir(t, qwen, "model")
	out := filepath.Join(t.TempDir(), "qwen2-abliterated")
	if code, stderr := runCaptured(t, "abliterate", "--model_path", qwen, "--vector_dir", vec, "--out", out, "--layer", "1"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rec abliterate.Record
	testutil.ReadJSON(t, filepath.Join(out, abliterate.RecordFile), &rec)
	vecSHA, _ := abliterate.FileSHA256(filepath.Join(vec, runs.VectorSafetensorsFile))
	srcSHA, _ := abliterate.FileSHA256(qwen)
	if rec.Model != "qwen2-abliterated.gguf" || rec.Provenance["layer"] != "1" || rec.Provenance["vector_sha256"] != vecSHA ||
		rec.SourceSHA256["model.gguf"] != srcSHA || rec.Provenance["direction"] != "vector" || rec.Untied == "" {
		t.Errorf("record %+v", rec)
	}
	outSHA, _ := abliterate.FileSHA256(filepath.Join(out, rec.Model))
	if rec.OutputSHA256[rec.Model] != outSHA {
		t.Errorf("output sha256 %q, the file's %q", rec.OutputSHA256[rec.Model], outSHA)
	}
	if _, err := models.ReadCheckpoint(filepath.Join(out, rec.Model)); err != nil {
		t.Fatalf("the written GGUF does not read back: %v", err)
	}
}

// On the bundled model (a Q4_1 GGUF, its rewritten tensors written in
// float32), the written model reproduces runtime ablation at the first
// reply token, and --check says so in the record.
func TestAbliterateCheckOnBundledModel(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the bundled model twice")
	}
	if _, err := models.Resolve(models.DefaultModel); err != nil {
		t.Skipf("bundled model not installed (%v)", err)
	}
	ck, err := models.ReadCheckpoint(models.DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	vec := familyVectorDir(t, models.DefaultModel, ck.Alias)
	out := filepath.Join(t.TempDir(), "abliterated")
	code, stderr := runCaptured(t, "abliterate", "--model_path", models.DefaultModel, "--vector_dir", vec, "--out", out, "--layer", "10", "--check", "8")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rec abliterate.Record
	testutil.ReadJSON(t, filepath.Join(out, abliterate.RecordFile), &rec)
	if rec.Check == nil || rec.Check.NPrompts != 8 {
		t.Fatalf("no check in the record: %+v", rec.Check)
	}
	t.Logf("%+v", *rec.Check)
	if rec.Check.MaxLogitDiff > 1e-3 {
		t.Errorf("the written model is %g from runtime ablation", rec.Check.MaxLogitDiff)
	}
	if !(rec.Check.FirstTokenKL > 0) {
		t.Errorf("first-token KL %g: the ablation changed nothing, so the check cannot fail", rec.Check.FirstTokenKL)
	}
}
