package tensorfile

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// ---- a tiny pickle reader for the subset WritePT emits (tests only) ----
//
// It never calls anything: globals become pkGlobalRef values, REDUCE becomes a pkCall and
// BINPERSID a pkPersistent, so the decoded tree can be compared with what torch would rebuild.
// It is only used on our own output.

type pkGlobalRef struct{ Module, Name string }

type pkCall struct {
	Fn   any
	Args []any
}

type pkPersistent struct{ ID any }

type pkMarkT struct{}

func readPickle(data []byte) (any, error) {
	r := bytes.NewReader(data)
	var stack []any
	pop := func() (any, error) {
		if len(stack) == 0 {
			return nil, errors.New("stack underflow")
		}
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		return v, nil
	}
	popMark := func() ([]any, error) {
		for i := len(stack) - 1; i >= 0; i-- {
			if _, ok := stack[i].(pkMarkT); ok {
				items := append([]any{}, stack[i+1:]...)
				stack = stack[:i]
				return items, nil
			}
		}
		return nil, errors.New("no MARK")
	}
	readLine := func() (string, error) {
		var sb strings.Builder
		for {
			c, err := r.ReadByte()
			if err != nil {
				return "", err
			}
			if c == '\n' {
				return sb.String(), nil
			}
			sb.WriteByte(c)
		}
	}
	for {
		op, err := r.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("no STOP: %w", err)
		}
		switch op {
		case pkProto:
			v, _ := r.ReadByte()
			if v != 2 {
				return nil, fmt.Errorf("protocol %d, want 2", v)
			}
		case pkGlobal:
			mod, err1 := readLine()
			name, err2 := readLine()
			if err1 != nil || err2 != nil {
				return nil, errors.New("truncated GLOBAL")
			}
			stack = append(stack, pkGlobalRef{mod, name})
		case pkMark:
			stack = append(stack, pkMarkT{})
		case pkTuple:
			items, err := popMark()
			if err != nil {
				return nil, err
			}
			stack = append(stack, items)
		case pkEmptyTuple:
			stack = append(stack, []any{})
		case pkBinUnicode:
			var n uint32
			if err := binary.Read(r, binary.LittleEndian, &n); err != nil || int(n) > r.Len() {
				return nil, errors.New("bad BINUNICODE")
			}
			b := make([]byte, n)
			_, _ = io.ReadFull(r, b)
			stack = append(stack, string(b))
		case pkBinInt1:
			b, _ := r.ReadByte()
			stack = append(stack, int64(b))
		case pkBinInt2:
			var v uint16
			_ = binary.Read(r, binary.LittleEndian, &v)
			stack = append(stack, int64(v))
		case pkBinInt:
			var v int32
			_ = binary.Read(r, binary.LittleEndian, &v)
			stack = append(stack, int64(v))
		case pkLong1:
			n, _ := r.ReadByte()
			if n != 8 {
				return nil, fmt.Errorf("LONG1 of %d bytes not in our subset", n)
			}
			var v int64
			_ = binary.Read(r, binary.LittleEndian, &v)
			stack = append(stack, v)
		case pkBinPersID:
			id, err := pop()
			if err != nil {
				return nil, err
			}
			stack = append(stack, pkPersistent{id})
		case pkNewFalse:
			stack = append(stack, false)
		case pkReduce:
			args, err1 := pop()
			fn, err2 := pop()
			tuple, ok := args.([]any)
			if err1 != nil || err2 != nil || !ok {
				return nil, errors.New("bad REDUCE")
			}
			stack = append(stack, pkCall{fn, tuple})
		case pkStop:
			if len(stack) != 1 || r.Len() != 0 {
				return nil, fmt.Errorf("STOP with %d values on the stack and %d bytes left", len(stack), r.Len())
			}
			return stack[0], nil
		default:
			return nil, fmt.Errorf("opcode %#x not in our subset", op)
		}
	}
}

// expectedPTPickle is the tree torch.load rebuilds from WritePT's data.pkl.
func expectedPTPickle(shape, stride []int, numel int) any {
	ints := func(vs []int) []any {
		out := []any{}
		for _, v := range vs {
			out = append(out, int64(v))
		}
		return out
	}
	return pkCall{
		Fn: pkGlobalRef{"torch._utils", "_rebuild_tensor_v2"},
		Args: []any{
			pkPersistent{[]any{"storage", pkGlobalRef{"torch", "FloatStorage"}, "0", "cpu", int64(numel)}},
			int64(0),
			ints(shape),
			ints(stride),
			false,
			pkCall{Fn: pkGlobalRef{"collections", "OrderedDict"}, Args: []any{}},
		},
	}
}

// readPTRecords returns the records of a .pt archive by name, checking storage and alignment.
func readPTRecords(t *testing.T, b []byte) (names []string, records map[string][]byte) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("not a zip archive: %v", err)
	}
	records = map[string][]byte{}
	for _, f := range zr.File {
		names = append(names, f.Name)
		if f.Method != zip.Store {
			t.Errorf("%s: method %d, want stored (0)", f.Name, f.Method)
		}
		if f.Flags&0x8 != 0 {
			t.Errorf("%s: has a data descriptor", f.Name)
		}
		off, err := f.DataOffset()
		if err != nil {
			t.Fatal(err)
		}
		if off%ptAlignment != 0 {
			t.Errorf("%s: data at offset %d, not a multiple of %d", f.Name, off, ptAlignment)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc) // checks the CRC32 too
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		_ = rc.Close()
		records[f.Name] = data
	}
	return names, records
}

func TestWritePTStructure(t *testing.T) {
	for _, tc := range []struct {
		name   string
		shape  []int
		stride []int
	}{
		{"vector shape [3,4]", []int{3, 4}, []int{4, 1}},
		{"1-D", []int{5}, []int{1}},
		{"3-D", []int{2, 3, 2}, []int{6, 2, 1}},
		{"scalar", []int{}, []int{}},
		{"zero rows", []int{0, 4}, []int{4, 1}},
		{"wide (BININT2 and BININT)", []int{2, 70000}, []int{70000, 1}},
		{"like Llama-2 [33,4096]", []int{33, 4096}, []int{4096, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, _ := numElements(tc.shape)
			data := make([]float32, n)
			for i := range data {
				data[i] = float32(i)*0.5 - 3
			}
			if n > 2 {
				data[1] = float32(math.Inf(-1))
				data[2] = float32(math.Copysign(0, -1))
			}
			var buf bytes.Buffer
			if err := WritePT(&buf, data, tc.shape); err != nil {
				t.Fatal(err)
			}
			names, rec := readPTRecords(t, buf.Bytes())
			wantNames := []string{"archive/data.pkl", "archive/.format_version", "archive/.storage_alignment", "archive/byteorder", "archive/data/0", "archive/version"}
			if !reflect.DeepEqual(names, wantNames) {
				t.Errorf("records %q, want %q", names, wantNames)
			}
			if got := string(rec["archive/.storage_alignment"]); got != "64" {
				t.Errorf(".storage_alignment = %q", got)
			}
			if got := string(rec["archive/byteorder"]); got != "little" {
				t.Errorf("byteorder = %q", got)
			}
			if got := strings.TrimSpace(string(rec["archive/version"])); got != "3" {
				t.Errorf("version = %q", got)
			}
			raw := rec["archive/data/0"]
			if len(raw) != 4*n {
				t.Fatalf("data/0 has %d bytes, want %d", len(raw), 4*n)
			}
			for i, v := range data {
				if got := binary.LittleEndian.Uint32(raw[4*i:]); got != math.Float32bits(v) {
					t.Fatalf("data/0[%d] = %#x, want %#x", i, got, math.Float32bits(v))
				}
			}
			tree, err := readPickle(rec["archive/data.pkl"])
			if err != nil {
				t.Fatalf("data.pkl: %v", err)
			}
			if want := expectedPTPickle(tc.shape, tc.stride, n); !reflect.DeepEqual(tree, want) {
				t.Errorf("data.pkl decodes to\n%#v\nwant\n%#v", tree, want)
			}
			// Deterministic output.
			var again bytes.Buffer
			_ = WritePT(&again, data, tc.shape)
			if !bytes.Equal(buf.Bytes(), again.Bytes()) {
				t.Error("WritePT is not deterministic")
			}
		})
	}
}

func TestPTPickleLargeInts(t *testing.T) {
	// numel beyond int32 uses LONG1; only the pickle is built (no 8 GiB of data).
	shape := []int{1 << 16, 1 << 16}
	tree, err := readPickle(ptPickle(shape, 1<<32))
	if err != nil {
		t.Fatal(err)
	}
	if want := expectedPTPickle(shape, []int{1 << 16, 1}, 1<<32); !reflect.DeepEqual(tree, want) {
		t.Errorf("got %#v", tree)
	}
}

func TestWritePTErrors(t *testing.T) {
	var buf bytes.Buffer
	if err := WritePT(&buf, []float32{1, 2, 3}, []int{2, 2}); err == nil {
		t.Error("shape [2,2] with 3 values: no error")
	}
	if err := WritePT(&buf, nil, []int{-1}); err == nil {
		t.Error("negative dimension: no error")
	}
}

// pyrefPython is the Python with torch that `make setup` installs for reference checks.
const pyrefPython = "../.cache/pyref/bin/python"

// checkScript loads each file given on the command line the safe way (.pt with torch.load,
// weights_only=True, also memory-mapped; .safetensors with the safetensors package) and prints
// one JSON line per file.
const checkScript = `
import json, sys, torch
for path in sys.argv[1:]:
    if path.endswith(".pt"):
        t = torch.load(path, weights_only=True)
        m = torch.load(path, weights_only=True, mmap=True)
        assert torch.equal(t, m), "mmap load differs"
    else:
        from safetensors.torch import load_file
        t = load_file(path)["v"]
    print(json.dumps({"dtype": str(t.dtype), "shape": list(t.shape), "requires_grad": t.requires_grad,
                      "contiguous": t.is_contiguous(), "values": t.flatten().tolist()}))
`

// TestTensorFilesLoadInPython checks WritePT and WriteSafetensors output with the real readers
// (torch 2.x and the safetensors package) when the reference Python is installed; one Python
// process checks every file, since importing torch takes seconds.
func TestTensorFilesLoadInPython(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the Python check (importing torch takes seconds)")
	}
	if _, err := os.Stat(pyrefPython); err != nil {
		t.Skipf("no reference Python at %s (installed by `make setup`); skipping the torch.load check", pyrefPython)
	}
	if out, err := exec.Command(pyrefPython, "-c", "import torch, safetensors").CombinedOutput(); err != nil {
		t.Skipf("reference Python lacks torch or safetensors: %v: %s", err, lastLine(out))
	}
	dir := t.TempDir()
	type file struct {
		path  string
		shape []int
		data  []float32
	}
	var files []file
	for i, shape := range [][]int{{3, 4}, {7}, {}, {2, 3, 2}, {0, 3}, {33, 64}} {
		n, _ := numElements(shape)
		data := make([]float32, n)
		for j := range data {
			data[j] = float32(j)*0.25 - 1
		}
		pt := file{filepath.Join(dir, fmt.Sprintf("v%d.pt", i)), shape, data}
		if err := WriteFileAtomic(pt.path, func(w io.Writer) error { return WritePT(w, data, shape) }); err != nil {
			t.Fatal(err)
		}
		st := file{filepath.Join(dir, fmt.Sprintf("v%d.safetensors", i)), shape, data}
		if err := WriteFileAtomic(st.path, func(w io.Writer) error {
			return WriteSafetensors(w, map[string]Float32Tensor{"v": {Shape: shape, Data: data}}, map[string]string{"k": "v"})
		}); err != nil {
			t.Fatal(err)
		}
		files = append(files, pt, st)
	}
	args := []string{"-c", checkScript}
	for _, f := range files {
		args = append(args, f.path)
	}
	out, err := exec.Command(pyrefPython, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("Python could not load our files: %s", ee.Stderr)
		}
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(files) {
		t.Fatalf("Python printed %d lines for %d files: %s", len(lines), len(files), out)
	}
	for i, f := range files {
		var got struct {
			DType        string    `json:"dtype"`
			Shape        []int     `json:"shape"`
			RequiresGrad bool      `json:"requires_grad"`
			Contiguous   bool      `json:"contiguous"`
			Values       []float64 `json:"values"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatalf("%s: %v", lines[i], err)
		}
		name := filepath.Base(f.path)
		if got.DType != "torch.float32" || !reflect.DeepEqual(got.Shape, f.shape) || got.RequiresGrad || !got.Contiguous {
			t.Errorf("%s (shape %v) loads as %s %v requires_grad=%v contiguous=%v", name, f.shape, got.DType, got.Shape, got.RequiresGrad, got.Contiguous)
		}
		if len(got.Values) != len(f.data) {
			t.Fatalf("%s: %d values, want %d", name, len(got.Values), len(f.data))
		}
		for j, v := range f.data {
			if float32(got.Values[j]) != v {
				t.Fatalf("%s[%d] = %v, want %v", name, j, got.Values[j], v)
			}
		}
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// ---- safetensors ----

func TestSafetensorsRoundTrip(t *testing.T) {
	tensors := map[string]Float32Tensor{
		"refusal_vector": {Shape: []int{3, 4}, Data: []float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, float32(math.Inf(1))}},
		"bias":           {Shape: []int{2}, Data: []float32{-1.5, 2.25}},
		"empty":          {Shape: []int{0, 5}, Data: []float32{}},
		"scalar":         {Shape: []int{}, Data: []float32{7}},
	}
	meta := map[string]string{"model": "tiny", "n_layers": "2"}
	path := filepath.Join(t.TempDir(), "v.safetensors")
	if err := WriteFileAtomic(path, func(w io.Writer) error { return WriteSafetensors(w, tensors, meta) }); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	hlen := binary.LittleEndian.Uint64(b)
	if hlen%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", hlen)
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+hlen], &header); err != nil {
		t.Fatalf("header is not JSON: %v", err)
	}
	if _, ok := header["__metadata__"]; !ok {
		t.Error("no __metadata__ in the header")
	}
	got, gotMeta, err := ReadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range tensors {
		g := got[name]
		if !reflect.DeepEqual(g.Shape, want.Shape) || !reflect.DeepEqual(g.Data, want.Data) {
			t.Errorf("%s: got %+v, want %+v", name, g, want)
		}
	}
	if len(got) != len(tensors) {
		t.Errorf("read %d tensors, wrote %d", len(got), len(tensors))
	}
	if !reflect.DeepEqual(gotMeta, meta) {
		t.Errorf("metadata %v, want %v", gotMeta, meta)
	}
	// Deterministic.
	var b1, b2 bytes.Buffer
	_ = WriteSafetensors(&b1, tensors, meta)
	_ = WriteSafetensors(&b2, tensors, meta)
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) || !bytes.Equal(b1.Bytes(), b) {
		t.Error("WriteSafetensors is not deterministic")
	}
	// No metadata: empty map back, no __metadata__ key written.
	var b3 bytes.Buffer
	_ = WriteSafetensors(&b3, map[string]Float32Tensor{"x": {Shape: []int{1}, Data: []float32{1}}}, nil)
	if bytes.Contains(b3.Bytes(), []byte("__metadata__")) {
		t.Error("__metadata__ written for nil metadata")
	}
}

func TestWriteSafetensorsErrors(t *testing.T) {
	for name, tensors := range map[string]map[string]Float32Tensor{
		"shape mismatch":     {"x": {Shape: []int{2, 2}, Data: []float32{1}}},
		"reserved name":      {"__metadata__": {Shape: []int{1}, Data: []float32{1}}},
		"empty name":         {"": {Shape: []int{1}, Data: []float32{1}}},
		"negative dimension": {"x": {Shape: []int{-1}, Data: nil}},
	} {
		if err := WriteSafetensors(io.Discard, tensors, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// safetensorsBytes builds a file from a raw header and data section.
func safetensorsBytes(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func TestReadSafetensorsRejectsMalformed(t *testing.T) {
	dir := t.TempDir()
	eight := make([]byte, 8)
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"empty file", nil, "shorter than"},
		{"absurd header length", binary.LittleEndian.AppendUint64(nil, 1<<62), "does not fit"},
		{"header length past the end", append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), "does not fit"},
		{"header not JSON", safetensorsBytes("nope", nil), "not a JSON object"},
		{"bad dtype", safetensorsBytes(`{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, eight[:4]), "dtype BF16"},
		{"shape vs range", safetensorsBytes(`{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, eight), "needs"},
		{"range past data", safetensorsBytes(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, eight[:4]), "out of place"},
		{"absurd shape", safetensorsBytes(`{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}`, eight), "too many"},
		{"huge declared shape", safetensorsBytes(`{"x":{"dtype":"F32","shape":[1000000000],"data_offsets":[0,8]}}`, eight), "needs"},
		{"negative offset", safetensorsBytes(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, eight[:4]), "out of place"},
		{"overlap", safetensorsBytes(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), "out of place"},
		{"hole", safetensorsBytes(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), "out of place"},
		{"trailing bytes", safetensorsBytes(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, eight), "cover"},
		{"bad metadata", safetensorsBytes(`{"__metadata__":{"a":1}}`, nil), "__metadata__"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".safetensors")
			if err := os.WriteFile(path, tc.file, 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := ReadSafetensors(path)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want one line mentioning %q", err, tc.want)
			}
		})
	}
	if _, _, err := ReadSafetensors(filepath.Join(dir, "missing.safetensors")); err == nil {
		t.Error("missing file: no error")
	}
}

// ---- atomic writes ----

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.txt")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A failing writer leaves the old content and no temporary file.
	err := WriteFileAtomic(path, func(w io.Writer) error {
		_, _ = w.Write([]byte("partial"))
		return errors.New("boom")
	})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v, want boom", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("after a failed write the file holds %q, want %q", b, "old")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	// A successful write replaces it.
	if err := WriteFileAtomic(path, func(w io.Writer) error { _, err := w.Write([]byte("new")); return err }); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Errorf("file holds %q, want new", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	entries, _ = os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	// A missing directory is an error.
	if err := WriteFileAtomic(filepath.Join(dir, "no", "such", "x"), func(io.Writer) error { return nil }); err == nil {
		t.Error("missing directory: no error")
	}
}

func TestWriteJSONAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.json")
	v := map[string]any{"n_queries": 20, "text": "a <b> & c", "vector_shape": []int{33, 4096}}
	if err := WriteJSONAtomic(path, v); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	want := "{\n  \"n_queries\": 20,\n  \"text\": \"a <b> & c\",\n  \"vector_shape\": [\n    33,\n    4096\n  ]\n}\n"
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}
	if err := WriteJSONAtomic(path, math.NaN()); err == nil {
		t.Error("NaN: no error")
	}
	if b2, _ := os.ReadFile(path); !bytes.Equal(b, b2) {
		t.Error("a failed JSON write changed the file")
	}
}
