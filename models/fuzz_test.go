package models

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadGGUF feeds arbitrary bytes to the GGUF loader: it must return an
// error or a model, never panic, and never allocate for absurd declared sizes
// (the reader caps counts; checkGGUFSize rejects tensors past the file's end).
// Seed corpus: testdata/fuzz/FuzzLoadGGUF plus the headers below.
func FuzzLoadGGUF(f *testing.F) {
	f.Add(ggufBytes(map[string]string{"general.architecture": "llama"}))
	f.Add(ggufBytes(map[string]string{"general.architecture": "mamba"}))
	f.Add([]byte("GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("GGUF"))
	backend, err := NewBackend("go")
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.gguf")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if m, err := Load(path, backend); err == nil {
			m.Close()
		}
	})
}
