package models

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ggufBytes writes a minimal GGUF v3 header holding string metadata only.
func ggufBytes(kv map[string]string) []byte {
	var b bytes.Buffer
	w := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	str := func(s string) { w(uint64(len(s))); b.WriteString(s) }
	b.WriteString("GGUF")
	w(uint32(3))
	w(uint64(0)) // tensors
	w(uint64(len(kv)))
	for k, v := range kv {
		str(k)
		w(uint32(8)) // string
		str(v)
	}
	return b.Bytes()
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hfDir := filepath.Join(dir, "gpt2-folder")
	_ = os.MkdirAll(hfDir, 0o755)
	_ = os.WriteFile(filepath.Join(hfDir, "config.json"), []byte(`{"model_type": "gpt2", "n_layer": 2}`), 0o644)

	cases := []struct {
		name, modelPath string
		want            []string // substrings of the one-line error
	}{
		{"unknown name", "no-such-model", []string{"unknown model", "--model_path accepts", "smollm2-135m-instruct"}},
		{"missing gguf", filepath.Join(dir, "missing.gguf"), []string{"does not exist"}},
		{"not gguf", write("weights.bin", []byte("x")), []string{"not a .gguf file"}},
		{"corrupt gguf", write("corrupt.gguf", []byte("this is not a gguf file at all")), []string{"corrupt or truncated GGUF"}},
		{"unsupported architecture (GGUF)", write("mamba.gguf", ggufBytes(map[string]string{"general.architecture": "mamba"})), []string{`unsupported architecture "mamba"`, "llama"}},
		{"unsupported architecture (folder)", hfDir, []string{`unsupported architecture "gpt2"`}},
	}
	if real, err := Resolve(DefaultModel); err == nil {
		f, _ := os.Open(real)
		head := make([]byte, 4<<20)
		n, _ := io.ReadFull(f, head)
		f.Close()
		cases = append(cases, struct {
			name, modelPath string
			want            []string
		}{"truncated gguf", write("truncated.gguf", head[:n]), []string{"truncated GGUF", "re-download"}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(c.modelPath, nil)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans several lines: %q", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
		})
	}
}

func TestNoChatTemplateError(t *testing.T) {
	_, err := NewChatTemplate("  ", "", "")
	if !errors.Is(err, ErrNoChatTemplate) {
		t.Fatalf("got %v", err)
	}
}

func TestPromptLongerThanContext(t *testing.T) {
	m := newTinyForTest(t, TinyConfig())
	_, err := m.Generate([]string{strings.Repeat("x", m.Config.ContextLength)}, GenerateOptions{MaxNewTokens: 4})
	if err == nil || !strings.Contains(err.Error(), "exceeds the model's context") {
		t.Fatalf("got %v", err)
	}
}
