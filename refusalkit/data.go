package refusalkit

// Instruction data: the embedded ALPACA pool, its fixed train/validation/test split, loaders for
// user-supplied datasets, and seeded sampling of queries.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// alpacaGz holds every no-input Stanford Alpaca instruction (31,323 lines of
// {"instruction": ...}), gzip-compressed. Source, licence (CC BY-NC 4.0) and attribution are in
// data/NOTICE.md.
//
//go:embed data/alpaca_no_input_instructions.jsonl.gz
var alpacaGz []byte

// AlpacaSource names the embedded pool, for metadata files.
const AlpacaSource = "Stanford Alpaca (tatsu-lab/alpaca), no-input instructions, CC BY-NC 4.0"

// Split names one of the three fixed, disjoint parts of an instruction pool.
type Split string

const (
	// Train holds about 80% of the instructions: the queries a refusal vector is extracted from.
	Train Split = "train"
	// Validation holds about 10%: the queries used to select the steering layer.
	Validation Split = "validation"
	// Test holds about 10%: the queries of the final coefficient sweep.
	Test Split = "test"
)

// Splits lists the three splits in order.
var Splits = []Split{Train, Validation, Test}

// SplitDescription documents how SplitOf assigns instructions, for metadata files.
const SplitDescription = "sha256(whitespace-trimmed instruction), first 8 bytes as big-endian uint64, mod 100: " +
	"0-79 train, 80-89 validation, 90-99 test"

// SplitOf returns the split an instruction belongs to. The split depends only on the text (never
// on a seed, on the pool it came from, or on its position): the first 8 bytes of the SHA-256 of
// the whitespace-trimmed text, read as a big-endian uint64, modulo 100, give a bucket; buckets
// 0-79 are Train, 80-89 Validation and 90-99 Test. So texts that are identical after trimming
// always land in the same split, and queries sampled from different splits are disjoint by
// construction, which the evaluation needs (see the spec's errata: different seeds over one pool
// would not guarantee it).
func SplitOf(instruction string) Split {
	sum := sha256.Sum256([]byte(strings.TrimSpace(instruction)))
	switch bucket := binary.BigEndian.Uint64(sum[:8]) % 100; {
	case bucket < 80:
		return Train
	case bucket < 90:
		return Validation
	default:
		return Test
	}
}

// Valid reports whether s is one of Train, Validation or Test.
func (s Split) Valid() bool {
	return s == Train || s == Validation || s == Test
}

var (
	alpacaOnce sync.Once
	alpacaPool []string
	alpacaErr  error
)

// LoadAlpaca returns the embedded pool of no-input ALPACA instructions, in the order of the
// original dataset, with exact duplicates removed (texts equal after trimming whitespace; the
// first occurrence is kept, text unchanged), so that sampling never draws the same text twice.
// The embedded file has no duplicates, so all 31,323 instructions are returned. The pool is
// decompressed once; each call returns a fresh copy the caller may modify.
func LoadAlpaca() ([]string, error) {
	alpacaOnce.Do(func() {
		zr, err := gzip.NewReader(bytes.NewReader(alpacaGz))
		if err != nil {
			alpacaErr = fmt.Errorf("embedded ALPACA data: %w; the package was built with a corrupt data/alpaca_no_input_instructions.jsonl.gz, rebuild it", err)
			return
		}
		defer zr.Close()
		alpacaPool, alpacaErr = parseJSONL("embedded ALPACA data", zr)
	})
	if alpacaErr != nil {
		return nil, alpacaErr
	}
	return append([]string(nil), alpacaPool...), nil
}

// MustLoadAlpaca is LoadAlpaca for notebook cells: it panics on error.
func MustLoadAlpaca() []string {
	pool, err := LoadAlpaca()
	if err != nil {
		panic(err)
	}
	return pool
}

// Instructions returns the instructions of pool that fall in split (see SplitOf), in pool order.
// It panics if split is not one of Train, Validation or Test, since that is a programming error.
func Instructions(pool []string, split Split) []string {
	if !split.Valid() {
		panic(fmt.Sprintf("refusalkit.Instructions: unknown split %q; use Train, Validation or Test", split))
	}
	out := []string{}
	for _, s := range pool {
		if SplitOf(s) == split {
			out = append(out, s)
		}
	}
	return out
}

// SampleQueries draws n distinct elements of instructions (sampling without replacement), in the
// order drawn. The draw depends only on instructions, n and seed: the generator is math/rand/v2's
// PCG seeded with (uint64(seed), 0), and the draw is a partial Fisher-Yates shuffle of the
// indices. It does not reproduce Python's random.sample, so a Go run and a Python run with the
// same seed draw different queries. Sample from a single split (Instructions) to keep train,
// validation and test queries disjoint.
func SampleQueries(instructions []string, n int, seed int64) ([]string, error) {
	if n <= 0 {
		return nil, fmt.Errorf("sample queries: n = %d; ask for at least 1 query", n)
	}
	if n > len(instructions) {
		return nil, fmt.Errorf("sample queries: n = %d but only %d instructions are available; ask for at most %d or give a larger dataset", n, len(instructions), len(instructions))
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	idx := make([]int, len(instructions))
	for i := range idx {
		idx[i] = i
	}
	out := make([]string, n)
	for i := range n {
		j := i + rng.IntN(len(idx)-i)
		idx[i], idx[j] = idx[j], idx[i]
		out[i] = instructions[idx[i]]
	}
	return out, nil
}

// HubDatasetLoader, when set, loads a dataset given by a hub id such as "tatsu-lab/alpaca" and
// returns its instructions. It is nil in this build: loading from a hub needs the network, and
// LoadDataset then returns an error explaining how to use a local file instead. A program that
// has network access may install a loader here.
var HubDatasetLoader func(id string) ([]string, error)

// hubIDPattern matches hub dataset ids "owner/name".
var hubIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// datasetExtensions are the local file formats LoadDataset reads.
var datasetExtensions = map[string]bool{".json": true, ".jsonl": true, ".csv": true}

// LoadDataset reads the instructions of a dataset given by a local file path:
//
//   - .json: an array of objects with an "instruction" field, or an object {"data": [...]} holding
//     such an array;
//   - .jsonl: one object with an "instruction" field a line (blank lines are skipped);
//   - .csv: a header row with an "instruction" column (matched case-insensitively), then one row
//     per instruction.
//
// Other fields and columns are ignored. Instructions keep the file's order; exact duplicates
// (equal after trimming whitespace) are removed, keeping the first. A missing, non-string or
// blank instruction, or a dataset with no instructions, is an error naming the file and row.
//
// A string that is not an existing path but looks like a hub dataset id ("owner/name") is handed
// to HubDatasetLoader; that is nil in this build, so the result is an error saying how to use a
// local file instead.
func LoadDataset(pathOrID string) ([]string, error) {
	if pathOrID == "" {
		return nil, errors.New("dataset: empty path; give a local .json, .jsonl or .csv file")
	}
	info, statErr := os.Stat(pathOrID)
	if statErr != nil {
		ext := strings.ToLower(filepath.Ext(pathOrID))
		if errors.Is(statErr, os.ErrNotExist) && !datasetExtensions[ext] && hubIDPattern.MatchString(pathOrID) {
			if HubDatasetLoader == nil {
				return nil, fmt.Errorf("dataset %q: no such local file, and loading hub datasets needs the network, which this build cannot use; download it and give the local .json, .jsonl or .csv path (the ALPACA no-input instructions are embedded: use LoadAlpaca)", pathOrID)
			}
			instr, err := HubDatasetLoader(pathOrID)
			if err != nil {
				return nil, fmt.Errorf("dataset %q from the hub: %w", pathOrID, err)
			}
			return checkInstructions(pathOrID, instr)
		}
		if errors.Is(statErr, os.ErrNotExist) {
			return nil, fmt.Errorf("dataset %s: no such file; give the path of a local .json, .jsonl or .csv file", pathOrID)
		}
		return nil, fmt.Errorf("dataset %s: %w", pathOrID, statErr)
	}
	if info.IsDir() {
		return nil, fmt.Errorf("dataset %s: is a directory; give the path of a .json, .jsonl or .csv file", pathOrID)
	}
	f, err := os.Open(pathOrID)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", pathOrID, err)
	}
	defer f.Close()
	// Bounded: a huge file (or /dev/zero) is refused with its size, not an out-of-memory crash.
	r := &boundedReader{r: f, left: MaxDatasetBytes, name: pathOrID}
	var instr []string
	switch ext := strings.ToLower(filepath.Ext(pathOrID)); ext {
	case ".json":
		instr, err = parseJSONDataset(pathOrID, r)
	case ".jsonl":
		instr, err = parseJSONL("dataset "+pathOrID, r)
	case ".csv":
		instr, err = parseCSVDataset(pathOrID, r)
	default:
		return nil, fmt.Errorf("dataset %s: unknown file type %q; give a .json, .jsonl or .csv file", pathOrID, ext)
	}
	if r.over {
		return nil, fmt.Errorf("dataset %s is larger than %d MiB: give a smaller file (a sample of its instructions)", pathOrID, MaxDatasetBytes>>20)
	}
	if err != nil {
		return nil, err
	}
	return checkInstructions(pathOrID, instr)
}

// MaxDatasetBytes bounds what LoadDataset reads from one file (a variable
// so tests can lower it).
var MaxDatasetBytes int64 = 256 << 20

// boundedReader reads at most left bytes, then fails (and records it).
type boundedReader struct {
	r    io.Reader
	left int64
	name string
	over bool
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, _ := b.r.Read(one[:]); n == 0 {
			return 0, io.EOF // exactly at the limit
		}
		b.over = true
		return 0, fmt.Errorf("dataset %s is larger than %d MiB", b.name, MaxDatasetBytes>>20)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

// MustLoadDataset is LoadDataset for notebook cells: it panics on error.
func MustLoadDataset(pathOrID string) []string {
	instr, err := LoadDataset(pathOrID)
	if err != nil {
		panic(err)
	}
	return instr
}

// checkInstructions rejects empty datasets and removes duplicates.
func checkInstructions(name string, instr []string) ([]string, error) {
	for i, s := range instr {
		if err := CheckText(fmt.Sprintf("dataset %s: instruction %d", name, i+1), s); err != nil {
			return nil, err
		}
	}
	instr = dedupe(instr)
	if len(instr) == 0 {
		return nil, fmt.Errorf("dataset %s: no instructions; give a dataset with at least one non-empty \"instruction\"", name)
	}
	return instr, nil
}

// dedupe removes texts equal, after trimming whitespace, to an earlier one.
func dedupe(instr []string) []string {
	seen := make(map[string]bool, len(instr))
	out := make([]string, 0, len(instr))
	for _, s := range instr {
		key := strings.TrimSpace(s)
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, s)
	}
	return out
}

// instructionOf extracts the "instruction" string of one JSON object; where names the row.
func instructionOf(name, where string, raw json.RawMessage) (string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return "", fmt.Errorf("%s: %s is not a JSON object; give objects like {\"instruction\": \"...\"}", name, where)
	}
	v, ok := obj["instruction"]
	if !ok {
		return "", fmt.Errorf("%s: %s has no \"instruction\" field; give objects like {\"instruction\": \"...\"}", name, where)
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("%s: %s: \"instruction\" is not a string; give it as text", name, where)
	}
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("%s: %s: \"instruction\" is empty; remove the row or fill it in", name, where)
	}
	return s, nil
}

// maxLineBytes bounds one JSONL line, so a file without newlines cannot exhaust memory silently.
const maxLineBytes = 16 << 20

// parseJSONL reads one {"instruction": ...} object a line; name prefixes errors.
func parseJSONL(name string, r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	var out []string
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if line == 1 {
			b = bytes.TrimPrefix(b, []byte("\uFEFF"))
		}
		if len(b) == 0 {
			continue
		}
		s, err := instructionOf(name, fmt.Sprintf("line %d", line), b)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s: a line is longer than %d MiB; give one JSON object a line", name, maxLineBytes>>20)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// parseJSONDataset reads an array of objects, or {"data": [...]}.
func parseJSONDataset(path string, r io.Reader) ([]string, error) {
	name := "dataset " + path
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	b = bytes.TrimPrefix(bytes.TrimSpace(b), []byte("\uFEFF"))
	var rows []json.RawMessage
	if len(b) > 0 && b[0] == '{' {
		var wrapper map[string]json.RawMessage
		if err := json.Unmarshal(b, &wrapper); err != nil {
			return nil, fmt.Errorf("%s: invalid JSON (%v); give an array of {\"instruction\": ...} objects or {\"data\": [...]}", name, err)
		}
		data, ok := wrapper["data"]
		if !ok {
			return nil, fmt.Errorf("%s: a JSON object without a \"data\" field; give an array of {\"instruction\": ...} objects or {\"data\": [...]}", name)
		}
		if err := json.Unmarshal(data, &rows); err != nil {
			return nil, fmt.Errorf("%s: \"data\" is not an array; give {\"data\": [{\"instruction\": ...}, ...]}", name)
		}
	} else if err := json.Unmarshal(b, &rows); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON (%v); give an array of {\"instruction\": ...} objects or {\"data\": [...]}", name, err)
	}
	out := make([]string, 0, len(rows))
	for i, raw := range rows {
		s, err := instructionOf(name, fmt.Sprintf("element %d", i), raw)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// parseCSVDataset reads a CSV file with a header row containing an "instruction" column.
func parseCSVDataset(path string, r io.Reader) ([]string, error) {
	name := "dataset " + path
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // rows may be ragged; only the instruction column must be present
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: empty file; give a CSV with a header row containing \"instruction\"", name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: invalid CSV (%v); give a CSV with a header row containing \"instruction\"", name, err)
	}
	col := -1
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\uFEFF")
		}
		if strings.EqualFold(strings.TrimSpace(h), "instruction") {
			col = i
			break
		}
	}
	if col < 0 {
		return nil, fmt.Errorf("dataset %s: no \"instruction\" column; give a CSV with a header row containing \"instruction\"", path)
	}
	var out []string
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: invalid CSV (%v); fix the quoting of that row", name, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && rec[0] == "" {
			continue // blank line
		}
		if col >= len(rec) {
			return nil, fmt.Errorf("%s: line %d has no \"instruction\" column (only %d fields); give every row that column", name, line, len(rec))
		}
		if strings.TrimSpace(rec[col]) == "" {
			return nil, fmt.Errorf("%s: line %d: \"instruction\" is empty; remove the row or fill it in", name, line)
		}
		out = append(out, rec[col])
	}
	return out, nil
}
