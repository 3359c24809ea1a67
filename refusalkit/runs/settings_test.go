package runs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
)

// --resume names the first setting that differs, with both values.
func TestCheckResumableNamesTheFirstDifference(t *testing.T) {
	dir := t.TempDir()
	a := RunSettings{{Name: "code", Value: "v1"}, {Name: "dataset_content", Value: "sha256 aaaa of 3 instructions"}, {Name: "seed", Value: "42"}, {Name: "queries", Value: "q1"}}
	if err := CheckResumable(dir, a, true); err == nil || !strings.Contains(err.Error(), "holds no interrupted run") {
		t.Fatalf("resume without a checkpoint: %v", err)
	}
	if err := CheckResumable(dir, a, false); err != nil {
		t.Fatal(err)
	}
	if err := CheckResumable(dir, a, true); err != nil {
		t.Fatalf("same settings: %v", err)
	}
	b := append(RunSettings{}, a...)
	b[2].Value, b[3].Value = "7", "q2"
	err := CheckResumable(dir, b, true)
	if err == nil || !strings.Contains(err.Error(), "seed was 42, this run has 7") {
		t.Errorf("other seed: %v", err)
	}
	b = append(RunSettings{}, a...)
	b[1].Value = "sha256 bbbb of 3 instructions"
	if err := CheckResumable(dir, b, true); err == nil || !strings.Contains(err.Error(), "dataset_content was sha256 aaaa") {
		t.Errorf("other dataset: %v", err)
	}
	// A checkpoint of an earlier version (no digest) is not resumed.
	if err := os.WriteFile(filepath.Join(dir, PartialDir, "settings.json"), []byte(`{"seed": 42}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckResumable(dir, a, true); err == nil || !strings.Contains(err.Error(), "earlier version") {
		t.Errorf("old checkpoint: %v", err)
	}
}

// A batch of another run, or activations that do not go with their batch,
// are refused.
func TestCheckpointBatchesAreBoundToTheirRun(t *testing.T) {
	dir := t.TempDir()
	rs := []refusalkit.Response{{Instruction: "a", Means: [][]float64{{1, 2}, {3, 4}}}, {Instruction: "b"}}
	c := DirCheckpoint{Dir: dir, Run: "run-one"}
	if err := c.Save(refusalkit.ModeRefusal, 8, rs); err != nil {
		t.Fatal(err)
	}
	back, ok, err := c.Load(refusalkit.ModeRefusal, 8)
	if err != nil || !ok || len(back) != 2 || back[0].Means[1][1] != 4 || back[1].Means != nil {
		t.Fatalf("round trip: %v %v %+v", ok, err, back)
	}
	if _, _, err := (DirCheckpoint{Dir: dir, Run: "run-two"}).Load(refusalkit.ModeRefusal, 8); err == nil || !strings.Contains(err.Error(), "another run") {
		t.Errorf("another run's batch: %v", err)
	}
	other := DirCheckpoint{Dir: t.TempDir(), Run: "run-one"}
	rs[0].Means[0][0] = 9
	if err := other.Save(refusalkit.ModeRefusal, 8, rs); err != nil {
		t.Fatal(err)
	}
	_, f64 := c.paths(refusalkit.ModeRefusal, 8)
	_, otherF64 := other.paths(refusalkit.ModeRefusal, 8)
	if err := os.Rename(otherF64, f64); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Load(refusalkit.ModeRefusal, 8); err == nil || !strings.Contains(err.Error(), "does not go with") {
		t.Errorf("mismatched activations: %v", err)
	}
}

// The model's files are identified by size, time and content at both ends.
func TestModelFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	data := make([]byte, 3<<20)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	stamp := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	os.Chtimes(path, stamp, stamp)
	a, err := ModelFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-10] = 1 // in the last MiB
	os.WriteFile(path, data, 0o644)
	os.Chtimes(path, stamp, stamp)
	b, _ := ModelFiles(path)
	if a == b {
		t.Errorf("a change in the last MiB is not seen: %s", a)
	}
	os.Chtimes(path, stamp.Add(time.Second), stamp.Add(time.Second))
	if c, _ := ModelFiles(path); c == b {
		t.Errorf("a new modification time is not seen")
	}
	folder, _ := ModelFiles(dir)
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("notes"), 0o644)
	if again, _ := ModelFiles(dir); again != folder {
		t.Errorf("a README changed the folder's identity")
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o644)
	if again, _ := ModelFiles(dir); again == folder {
		t.Errorf("a new config.json is not seen")
	}
	if id, _ := ModelFiles("tiny-random"); !strings.Contains(id, "built in") {
		t.Errorf("tiny-random: %s", id)
	}
}

// The dtype a model was loaded in is a setting: a checkpoint made in
// bfloat16 is not resumed in float32.
func TestRunSettingsRecordTheDType(t *testing.T) {
	cfg := refusalkit.ExtractConfig{}
	cfg.NSamples = 3
	var settings []RunSettings
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.BFloat16} {
		m, err := models.LoadWith("tiny-random", nil, models.LoadOptions{DType: dt})
		if err != nil {
			t.Fatal(err)
		}
		s, err := ExtractSettings(m, cfg)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		settings = append(settings, s)
	}
	if name, was, now := settings[1].FirstDifference(settings[0]); name != "dtype" || was != "float32" || now != "bfloat16" {
		t.Errorf("first difference %q: %q → %q, want dtype: float32 → bfloat16", name, was, now)
	}
}
