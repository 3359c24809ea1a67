package runs

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/refusalkit/refusalkit/internal/testutil"
	"github.com/refusalkit/refusalkit/refusalkit"
)

// One provenance record, written by refusalkit.ProvenanceOf into
// metadata.json, the vector file and the checkpoint, reads back the same
// from each with ReadProvenance (the vector file without the model's path,
// which it never records).
func TestProvenanceRoundTrip(t *testing.T) {
	m := testutil.TinyModel(t)
	cfg := refusalkit.ExtractConfig{NSamples: 2, GenerateConfig: smallGenerateConfig()}.WithDefaults()
	x, _ := refusalkit.Extract(m, cfg)
	if x == nil {
		t.Fatal("extract failed")
	}
	x.FilteredRefusal, x.FilteredCompliant = x.Refusal[:3], x.Compliant[:3] // the tiny model never refuses: stand them in
	var err error
	if x.Vector, err = refusalkit.ComputeRefusalVector(m.Alias(), x.FilteredRefusal, x.FilteredCompliant); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	saveExtraction(t, dir, m, x)
	settings, err := ExtractSettings(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := refusalkit.ProvenanceOf(m, settings)
	if want.ModelHash == "" || want.ModelHash != settings.Value("model_files") || want.Tokenizer == "" || want.RunDigest != settings.Digest() || len(want.Versions) == 0 {
		t.Fatalf("incomplete provenance: %+v", want)
	}
	for _, path := range []string{dir, filepath.Join(dir, MetadataFile), filepath.Join(dir, VectorSafetensorsFile)} {
		got, err := ReadProvenance(path)
		if err != nil {
			t.Fatal(err)
		}
		w := want
		if filepath.Ext(path) == ".safetensors" {
			w.ModelPath = ""
		}
		if !reflect.DeepEqual(*got, w) {
			t.Errorf("%s: read back\n%+v\nwant\n%+v", path, *got, w)
		}
	}
	// The checkpoint's settings.json, the record --resume checks.
	cut := t.TempDir()
	if err := CheckResumable(cut, settings, false); err != nil {
		t.Fatal(err)
	}
	got, err := ReadProvenance(filepath.Join(cut, PartialDir, "settings.json"))
	if err != nil || got.RunDigest != settings.Digest() || !reflect.DeepEqual(got.RunSettings, settings) {
		t.Errorf("checkpoint: %+v, %v", got, err)
	}
}

// Files written before the record held the model's hash, the tokenizer and
// the run settings still read: those fields are empty.
func TestOldFilesStillRead(t *testing.T) {
	dir := t.TempDir()
	old := `{"n_queries": 2, "seed": 42, "vector_shape": [4, 32], "model_path": "smollm2-135m-instruct", "model_alias": "SmolLM2-135M-Instruct",
		"backend": "xla:cpu", "dtype": "float32", "versions": {"refusalkit": "v0.1"}, "refusal_instruction": "Refuse.", "complete": false}`
	if err := os.WriteFile(filepath.Join(dir, MetadataFile), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	want := refusalkit.Provenance{ModelPath: "smollm2-135m-instruct", ModelAlias: "SmolLM2-135M-Instruct", Backend: "xla:cpu", DType: "float32",
		Versions: map[string]string{"refusalkit": "v0.1"}}
	got, err := ReadProvenance(dir)
	if err != nil || !reflect.DeepEqual(*got, want) {
		t.Errorf("old metadata.json: %+v, %v", got, err)
	}
	x, err := ReadExtraction(dir)
	if err != nil || x.Model != "smollm2-135m-instruct" || x.Config.RefusalInstructions[0] != "Refuse." {
		t.Errorf("old metadata.json as an extraction: %+v, %v", x, err)
	}
	// A vector file with the keys it always had: backend and dtype.
	v := &refusalkit.RefusalVector{Model: "Tiny", NLayers: 1, DModel: 2, Data: [][]float32{{1, 2}, {3, 4}},
		Provenance: map[string]string{"backend": "go", "dtype": "float32", "seed": "42"}}
	path := filepath.Join(dir, "old.safetensors")
	if err := WriteVectorFile(path, v); err != nil {
		t.Fatal(err)
	}
	got, err = ReadProvenance(path)
	if err != nil || !reflect.DeepEqual(*got, refusalkit.Provenance{ModelAlias: "Tiny", Backend: "go", DType: "float32"}) {
		t.Errorf("old vector file: %+v, %v", got, err)
	}
}
