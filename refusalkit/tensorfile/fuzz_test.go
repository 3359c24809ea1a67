package tensorfile

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadSafetensors: arbitrary bytes give an error or tensors, never a
// panic, and memory stays bounded whatever sizes the header declares.
func FuzzReadSafetensors(f *testing.F) {
	var good bytes.Buffer
	_ = WriteSafetensors(&good, map[string]Float32Tensor{"refusal_vector": {Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}}}, map[string]string{"model": "m"})
	f.Add(good.Bytes())
	f.Add(safetensorsBytes(`{"x":{"dtype":"F32","shape":[1000000000,1000000000],"data_offsets":[0,4]}}`, []byte{0, 0, 0, 0}))
	f.Add([]byte("\xff\xff\xff\xff\xff\xff\xff\x7f{}"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.safetensors")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		ts, _, err := ReadSafetensors(path)
		if err != nil {
			return
		}
		for name, tensor := range ts {
			if err := tensor.Validate(); err != nil {
				t.Fatalf("tensor %q read back invalid: %v", name, err)
			}
		}
	})
}

// FuzzWritePTRoundTrip: any small float32 tensor written as .pt parses back
// to the same shape and bytes with the test's pickle reader.
func FuzzWritePTRoundTrip(f *testing.F) {
	f.Add(uint8(3), uint8(4), []byte{1, 2, 3, 4})
	f.Add(uint8(0), uint8(7), []byte{})
	f.Add(uint8(31), uint8(1), []byte{0xff, 0x7f, 0x80, 0x00})
	f.Fuzz(func(t *testing.T, rows, cols uint8, seed []byte) {
		n := int(rows) * int(cols)
		data := make([]float32, n)
		for i := range data {
			if len(seed) > 0 {
				data[i] = float32(seed[i%len(seed)]) - 128.5
			}
		}
		var buf bytes.Buffer
		if err := WritePT(&buf, data, []int{int(rows), int(cols)}); err != nil {
			t.Fatal(err)
		}
		_, records := readPTRecords(t, buf.Bytes())
		var raw []byte
		for name, rec := range records {
			if filepath.Base(name) == "0" && filepath.Base(filepath.Dir(name)) == "data" {
				raw = rec
			}
		}
		if len(raw) != 4*n {
			t.Fatalf("data record holds %d bytes, want %d", len(raw), 4*n)
		}
		var want bytes.Buffer
		_ = WriteSafetensors(&want, map[string]Float32Tensor{"x": {Shape: []int{int(rows), int(cols)}, Data: data}}, nil)
		if !bytes.HasSuffix(want.Bytes(), raw) {
			t.Fatalf("data record is not the little-endian float32 values")
		}
	})
}
