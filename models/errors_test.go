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

// Gemma's chat template (as in Gemma 1/2 checkpoints): no system role, the
// assistant is "model", BOS written by the template, <end_of_turn> ends a
// turn. Rendered as Jinja renders it; a system message is the template's
// own one-line error.
func TestGemmaChatConventions(t *testing.T) {
	const gemma = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
	tmpl, err := NewChatTemplate(gemma, "<bos>", "<eos>")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.UserPrompt("  Hello there \n")
	if err != nil {
		t.Fatal(err)
	}
	// jinja2 3.1.6 (transformers' renderer) gives exactly this for the same input.
	if want := "<bos><start_of_turn>user\nHello there<end_of_turn>\n<start_of_turn>model\n"; got != want {
		t.Errorf("rendered %q, want %q", got, want)
	}
	_, err = tmpl.Render([]Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "hi"}}, true)
	if err == nil || !strings.Contains(err.Error(), "System role not supported") || strings.Contains(err.Error(), "\n") {
		t.Errorf("system role: got %v", err)
	}
}

// A bundled model that is not installed, outside the checkout's own cache
// ($REFUSALKIT_MODELS elsewhere), is refused with the command that installs it.
func TestBundledNotInstalled(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("REFUSALKIT_MODELS", dir)
	_, err := Resolve("qwen2.5-coder-1.5b-instruct")
	want := "bundled model qwen2.5-coder-1.5b-instruct is not installed at " + dir +
		"/Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf: run `bash tools/setup/qwen.sh 1.5b` in a refusalkit checkout (or give the .gguf file's path)"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v\nwant %s", err, want)
	}
	_, err = Resolve("no-such-model")
	if err == nil || !strings.Contains(err.Error(), "a bundled name (qwen2.5-coder-0.5b-instruct, qwen2.5-coder-1.5b-instruct, smollm2-135m-instruct)") {
		t.Fatalf("error %v does not list the bundled names", err)
	}
}
