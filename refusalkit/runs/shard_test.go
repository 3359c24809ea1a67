package runs

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refusalkit/refusalkit/internal/testutil"
	"github.com/refusalkit/refusalkit/refusalkit"
)

// The shards of a run, merged, make the run's files: the same responses
// in the same order, byte for byte, and the vector within 1e-6 of the
// whole run's; in two and in three shards (three splits the batches
// unevenly). A missing, repeated or foreign shard is refused by name.
func TestShardsMergeToTheWholeRun(t *testing.T) {
	m := testutil.BundledModel(t)
	// The interop check's refusal instruction: the bundled model follows it often enough.
	cfg := refusalkit.ExtractConfig{NSamples: 4, GenerateConfig: refusalkit.GenerateConfig{NCompletions: 2, MaxNewTokens: 16, BatchSize: 2,
		RefusalInstructions: []string{`Do not answer the question below; politely decline instead, starting with "I'm sorry".`}}}
	extract := func(dir string, cfg refusalkit.ExtractConfig) {
		t.Helper()
		run, err := Open(dir, Fresh)
		if err != nil {
			t.Fatal(err)
		}
		defer run.Close()
		if _, err := run.Extract(m, cfg); err != nil {
			t.Fatal(err)
		}
	}
	whole := filepath.Join(t.TempDir(), "whole")
	extract(whole, cfg)
	wantVec, err := LoadVector(whole)
	if err != nil {
		t.Fatal(err)
	}
	shards := func(count int, c refusalkit.ExtractConfig) []string {
		var dirs []string
		for i := range count {
			dir := filepath.Join(t.TempDir(), "shard")
			c.Shard = &refusalkit.Shard{Index: i, Count: count}
			extract(dir, c)
			if exists(filepath.Join(dir, MetadataFile)) || exists(filepath.Join(dir, VectorSafetensorsFile)) || !exists(filepath.Join(dir, ShardFile)) {
				t.Fatalf("shard %d/%d wrote a whole run's files, or no %s", i, count, ShardFile)
			}
			dirs = append(dirs, dir)
		}
		return dirs
	}
	for _, count := range []int{2, 3} {
		dirs := shards(count, cfg)
		out := filepath.Join(t.TempDir(), "merged")
		if _, err := MergeShards(out, dirs, Fresh); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{CompliantResponsesFile, RefusalResponsesFile, FilteredCompliantResponsesFile, FilteredRefusalResponsesFile} {
			a, _ := os.ReadFile(filepath.Join(whole, name))
			b, _ := os.ReadFile(filepath.Join(out, name))
			if len(a) == 0 || !bytes.Equal(a, b) {
				t.Errorf("%d shards: %s differs from the whole run's", count, name)
			}
		}
		got, err := LoadVector(out)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for l := range wantVec.Data {
			for d := range wantVec.Data[l] {
				worst = math.Max(worst, math.Abs(float64(got.Data[l][d]-wantVec.Data[l][d])))
			}
		}
		t.Logf("%d shards: %d refusal and %d compliant kept; max |vector difference| %.3g", count, got.NRefusal, got.NCompliant, worst)
		if worst > 1e-6 || got.NRefusal != wantVec.NRefusal || got.NCompliant != wantVec.NCompliant {
			t.Errorf("%d shards: vector %g from the whole run's, counts %d/%d for %d/%d", count, worst, got.NRefusal, got.NCompliant, wantVec.NRefusal, wantVec.NCompliant)
		}
		a, b := readMetadataForCompare(t, whole), readMetadataForCompare(t, out)
		if a != b {
			t.Errorf("%d shards: metadata.json differs from the whole run's:\n%s\n%s", count, a, b)
		}
	}

	dirs := shards(2, cfg)
	other := cfg
	other.Seed = new(int64)
	foreign := shards(2, other)
	for _, c := range []struct {
		dirs []string
		want string
	}{
		{dirs[:1], "shard 1/2 is missing: give its folder too (1 of 2 given)"},
		{[]string{dirs[0], dirs[0], dirs[1]}, "shards " + dirs[0] + " and " + dirs[0] + " are both shard 0/2: give each shard once"},
		{[]string{dirs[0], foreign[1]}, "shard " + foreign[1] + " belongs to another run than " + dirs[0] + " (seed was 42, there 0): give the shards of one run"},
		{[]string{dirs[0], whole}, whole + " holds no finished shard (shard.json): run `refusalkit extract --shard i/M` there, or let it finish (--resume)"},
	} {
		out := filepath.Join(t.TempDir(), "merged")
		_, err := MergeShards(out, c.dirs, Fresh)
		if e := (*FolderError)(nil); !errors.As(err, &e) || err.Error() != c.want {
			t.Errorf("got %v, want %q", err, c.want)
		}
		if exists(filepath.Join(out, MetadataFile)) {
			t.Errorf("a refused merge wrote %s", out)
		}
	}
}

// readMetadataForCompare is metadata.json without what differs between a
// run and its merge by nature: the timings.
func readMetadataForCompare(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, MetadataFile))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if i := strings.Index(s, `"timings_seconds"`); i >= 0 {
		j := strings.Index(s[i:], "}")
		s = s[:i] + s[i+j+1:]
	}
	return s
}

// Shards of one run on two machines read the same model from two copies:
// their files' modification times differ, and the merge compares their
// content instead; other model bytes are another run.
func TestSameRunIgnoresOnlyModificationTimes(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.gguf"), filepath.Join(dir, "b.gguf")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte("the same bytes"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(b, time.Now().Add(-time.Hour), time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	rec := func(path string) ShardRecord {
		files, _ := refusalkit.ModelFiles(path)
		content, _ := refusalkit.ModelContent(path)
		return ShardRecord{Metadata: Metadata{Provenance: refusalkit.Provenance{ModelContent: content,
			RunSettings: RunSettings{{Name: "seed", Value: "42"}, {Name: "model_files", Value: files}}}}}
	}
	if fa, _ := refusalkit.ModelFiles(a); fa == rec(b).Metadata.RunSettings[1].Value {
		t.Fatal("the copies' model_files do not differ: the test shows nothing")
	}
	if name, _, _ := sameRun(rec(a), rec(b)); name != "" {
		t.Errorf("a copy of the model counts as another run (%s)", name)
	}
	if err := os.WriteFile(b, []byte("other bytes!!!"), 0o644); err != nil {
		t.Fatal(err)
	}
	if name, _, _ := sameRun(rec(a), rec(b)); name != "model_files" {
		t.Errorf("other model bytes: first difference %q, want model_files", name)
	}
}
