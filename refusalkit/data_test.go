package refusalkit

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const alpacaSize = 31323

func TestLoadAlpaca(t *testing.T) {
	pool, err := LoadAlpaca()
	if err != nil {
		t.Fatal(err)
	}
	if len(pool) != alpacaSize {
		t.Fatalf("LoadAlpaca: got %d instructions, want %d", len(pool), alpacaSize)
	}
	// The file's order is kept.
	if want := "Give three tips for staying healthy."; pool[0] != want {
		t.Errorf("pool[0] = %q, want %q", pool[0], want)
	}
	if want := "What are the three primary colors?"; pool[1] != want {
		t.Errorf("pool[1] = %q, want %q", pool[1], want)
	}
	seen := map[string]bool{}
	for i, s := range pool {
		if strings.TrimSpace(s) == "" {
			t.Fatalf("pool[%d] is blank", i)
		}
		if seen[strings.TrimSpace(s)] {
			t.Fatalf("pool[%d] = %q is a duplicate", i, s)
		}
		seen[strings.TrimSpace(s)] = true
	}
	// Each call returns its own copy.
	pool[0] = "changed"
	again := MustLoadAlpaca()
	if again[0] == "changed" {
		t.Error("LoadAlpaca returned a shared slice: a caller's change leaked into the next call")
	}
}

func TestSplitOfGolden(t *testing.T) {
	// Pinned values, computed independently in Python:
	//   int.from_bytes(hashlib.sha256(s.strip().encode()).digest()[:8], "big") % 100
	// Changing the hash or the bucket boundaries would silently move queries between train,
	// validation and test, so such a change must show up here.
	for instruction, want := range map[string]Split{
		"Give three tips for staying healthy.":                              Train,
		"What are the three primary colors?":                                Train,
		"How can we reduce air pollution?":                                  Validation,
		"Explain the use of word embeddings in Natural Language Processing": Validation,
		"Write a short story in third person narration about a protagonist who has to make an important career decision.": Test,
		"Generate a poem that expresses joy.": Test,
		"  hello\n":                           Train,
	} {
		if got := SplitOf(instruction); got != want {
			t.Errorf("SplitOf(%q) = %s, want %s", instruction, got, want)
		}
	}
}

func TestSplitProportionsOnAlpaca(t *testing.T) {
	pool := MustLoadAlpaca()
	counts := map[Split]int{}
	for _, s := range pool {
		counts[SplitOf(s)]++
	}
	// Computed independently in Python with the same rule (see TestSplitOfGolden).
	want := map[Split]int{Train: 25049, Validation: 3103, Test: 3171}
	for split, n := range want {
		if counts[split] != n {
			t.Errorf("split %s has %d instructions, want %d", split, counts[split], n)
		}
	}
	t.Logf("ALPACA split counts: train=%d validation=%d test=%d (of %d)", counts[Train], counts[Validation], counts[Test], len(pool))
	// Expected 80/10/10; a binomial standard deviation is at most ~71 instructions for train,
	// so 1 percentage point (~313) is a generous bound that still catches a wrong boundary.
	for split, frac := range map[Split]float64{Train: 0.8, Validation: 0.1, Test: 0.1} {
		got := float64(counts[split]) / float64(len(pool))
		if got < frac-0.01 || got > frac+0.01 {
			t.Errorf("split %s holds %.4f of the pool, want %.2f ± 0.01", split, got, frac)
		}
	}
	if counts[Train]+counts[Validation]+counts[Test] != len(pool) {
		t.Errorf("split counts %v do not add up to %d", counts, len(pool))
	}
}

func TestInstructionsDisjointAndComplete(t *testing.T) {
	pool := MustLoadAlpaca()
	where := map[string]Split{}
	total := 0
	for _, split := range Splits {
		part := Instructions(pool, split)
		total += len(part)
		for _, s := range part {
			if prev, ok := where[s]; ok {
				t.Fatalf("%q is in both %s and %s", s, prev, split)
			}
			where[s] = split
			if SplitOf(s) != split {
				t.Fatalf("Instructions(%s) returned %q of split %s", split, s, SplitOf(s))
			}
		}
		// Pool order is kept.
		again := Instructions(pool, split)
		if !reflect.DeepEqual(part, again) {
			t.Fatalf("Instructions(%s) is not deterministic", split)
		}
	}
	if total != len(pool) {
		t.Errorf("splits hold %d instructions, pool %d", total, len(pool))
	}
	empty := Instructions(nil, Test)
	if empty == nil || len(empty) != 0 {
		t.Errorf("Instructions(nil) = %#v, want an empty non-nil slice", empty)
	}
}

func TestInstructionsPanicsOnUnknownSplit(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Instructions with an unknown split did not panic")
		}
	}()
	Instructions([]string{"a"}, Split("dev"))
}

func TestSplitOfIdenticalTexts(t *testing.T) {
	for _, s := range MustLoadAlpaca()[:500] {
		want := SplitOf(s)
		for _, variant := range []string{s, " " + s, s + "\n", "\t" + s + "  \r\n", strings.Clone(s)} {
			if got := SplitOf(variant); got != want {
				t.Fatalf("SplitOf(%q) = %s but SplitOf(%q) = %s", variant, got, s, want)
			}
		}
	}
}

func TestSplitsAllOccur(t *testing.T) {
	// Each split is reachable from short synthetic texts too (not only ALPACA's).
	seen := map[Split]bool{}
	for i := 0; i < 100 && len(seen) < 3; i++ {
		seen[SplitOf(strings.Repeat("x", i))] = true
	}
	if len(seen) != 3 {
		t.Errorf("only splits %v occur among 100 synthetic texts", seen)
	}
}

func TestSampleQueries(t *testing.T) {
	train := Instructions(MustLoadAlpaca(), Train)
	a, err := SampleQueries(train, 20, 42)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := SampleQueries(train, 20, 42)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("SampleQueries with the same seed gave different samples")
	}
	c, _ := SampleQueries(train, 20, 43)
	if reflect.DeepEqual(a, c) {
		t.Error("SampleQueries with seeds 42 and 43 gave the same sample")
	}
	// Without replacement: all distinct, all from the input.
	in := map[string]bool{}
	for _, s := range train {
		in[s] = true
	}
	seen := map[string]bool{}
	for _, s := range a {
		if !in[s] {
			t.Errorf("sampled %q is not in the input", s)
		}
		if seen[s] {
			t.Errorf("sampled %q twice", s)
		}
		seen[s] = true
	}
	// A prefix property of the partial Fisher-Yates draw: asking for fewer gives a prefix.
	d, _ := SampleQueries(train, 5, 42)
	if !reflect.DeepEqual(d, a[:5]) {
		t.Errorf("SampleQueries(n=5) = %q is not a prefix of SampleQueries(n=20) = %q", d, a[:5])
	}
	// Drawing everything is a permutation.
	small := []string{"a", "b", "c", "d"}
	all, err := SampleQueries(small, 4, 7)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, s := range all {
		got[s] = true
	}
	if len(got) != 4 {
		t.Errorf("SampleQueries(all 4) = %q, want a permutation", all)
	}
	if !reflect.DeepEqual(small, []string{"a", "b", "c", "d"}) {
		t.Error("SampleQueries modified its input")
	}
	t.Logf("seed 42, first 3 train queries: %q", a[:3])
}

func TestSampleQueriesErrors(t *testing.T) {
	for _, n := range []int{0, -1, 5} {
		if _, err := SampleQueries([]string{"a", "b"}, n, 1); err == nil {
			t.Errorf("SampleQueries(n=%d of 2) gave no error", n)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("error is not one line: %q", err)
		}
	}
}

func TestLoadDataset(t *testing.T) {
	dir := filepath.Join("testdata", "datasets")
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"array.json", []string{"Name three primary colors.", "Explain photosynthesis in one sentence.", "Write a haiku about autumn <leaves> & rain."}},
		{"wrapped.json", []string{"Name three primary colors.", "Explain photosynthesis in one sentence."}},
		// The third line repeats the first up to whitespace and is dropped; the blank line is skipped.
		{"lines.jsonl", []string{"Name three primary colors.", "Explain photosynthesis in one sentence.", "List two prime numbers."}},
		{"table.csv", []string{"Name three primary colors.", "Explain photosynthesis, briefly, in one sentence.", "A \"quoted\" instruction\nover two lines"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := LoadDataset(filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("LoadDataset(%s)\n got %q\nwant %q", tc.file, got, tc.want)
			}
		})
	}
}

func TestLoadDatasetErrors(t *testing.T) {
	dir := filepath.Join("testdata", "datasets")
	for _, tc := range []struct {
		arg  string
		want []string // substrings of the error
	}{
		{filepath.Join(dir, "no_instruction_column.csv"), []string{`no "instruction" column`, `give a CSV with a header row containing "instruction"`}},
		{filepath.Join(dir, "empty_instruction.csv"), []string{"line 3", "empty"}},
		{filepath.Join(dir, "header_only.csv"), []string{"no instructions"}},
		{filepath.Join(dir, "missing_field.jsonl"), []string{"line 2", `no "instruction" field`}},
		{filepath.Join(dir, "not_object.jsonl"), []string{"line 2", "not a JSON object"}},
		{filepath.Join(dir, "number_instruction.json"), []string{"element 0", "not a string"}},
		{filepath.Join(dir, "invalid.json"), []string{"invalid JSON"}},
		{filepath.Join(dir, "no_data_field.json"), []string{`without a "data" field`}},
		{filepath.Join(dir, "empty_array.json"), []string{"no instructions"}},
		{filepath.Join(dir, "empty.jsonl"), []string{"no instructions"}},
		{filepath.Join(dir, "plain.txt"), []string{"unknown file type", ".json, .jsonl or .csv"}},
		{filepath.Join(dir, "missing.csv"), []string{"no such file"}},
		{dir, []string{"is a directory"}},
		{"", []string{"empty path"}},
		{"tatsu-lab/alpaca", []string{"tatsu-lab/alpaca", "needs the network", "local .json, .jsonl or .csv", "LoadAlpaca"}},
		{"nosuchdir/nosuchfile.jsonl", []string{"no such file"}},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			got, err := LoadDataset(tc.arg)
			if err == nil {
				t.Fatalf("LoadDataset(%q) = %q, want an error", tc.arg, got)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestLoadDatasetHubHook(t *testing.T) {
	defer func(old func(string) ([]string, error)) { HubDatasetLoader = old }(HubDatasetLoader)
	var asked string
	HubDatasetLoader = func(id string) ([]string, error) {
		asked = id
		return []string{"a", "b", "a"}, nil
	}
	got, err := LoadDataset("owner/name")
	if err != nil {
		t.Fatal(err)
	}
	if asked != "owner/name" || !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("hub hook: asked %q, got %q", asked, got)
	}
	// An existing local path wins over the hub, even when it looks like owner/name.
	tmp := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tmp, "owner"), 0o755); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(tmp, "owner", "name.jsonl")
	if err := os.WriteFile(local, []byte(`{"instruction": "local"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = LoadDataset(local)
	if err != nil || !reflect.DeepEqual(got, []string{"local"}) {
		t.Errorf("LoadDataset(local) = %q, %v", got, err)
	}
}

func TestLoadJailbreakBench(t *testing.T) {
	bs, err := LoadJailbreakBench()
	if err != nil {
		t.Fatal(err)
	}
	cats := map[string]int{}
	for _, b := range bs {
		cats[b.Category]++
	}
	if len(bs) != 100 || len(cats) != 10 {
		t.Errorf("%d behaviours in %d categories, want JailbreakBench's 100 in 10", len(bs), len(cats))
	}
}
