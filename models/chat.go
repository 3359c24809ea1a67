package models

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/nikolalohinski/gonja/v2"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
)

// Message is one turn of a chat.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatTemplate renders the model's own Jinja chat template, the one shipped
// in its checkpoint (GGUF tokenizer.chat_template or tokenizer_config.json).
type ChatTemplate struct {
	Source   string
	BOSToken string
	EOSToken string
	tmpl     *exec.Template
}

// ErrNoChatTemplate is returned for checkpoints that ship no chat template.
var ErrNoChatTemplate = errors.New("the model has no chat template (GGUF tokenizer.chat_template or tokenizer_config.json chat_template): refusalkit needs an instruction-tuned chat model")

// NewChatTemplate compiles a Jinja chat template with the environment
// Hugging Face uses for chat templates (trim_blocks and lstrip_blocks on).
func NewChatTemplate(source, bosToken, eosToken string) (*ChatTemplate, error) {
	if strings.TrimSpace(source) == "" {
		return nil, ErrNoChatTemplate
	}
	cfg := config.New()
	cfg.TrimBlocks = true
	cfg.LeftStripBlocks = true
	cfg.KeepTrailingNewline = false
	loader, err := loaders.NewFileSystemLoader("")
	if err != nil {
		return nil, err
	}
	shifted, err := loaders.NewShiftedLoader("chat_template", bytes.NewReader([]byte(source)), loader)
	if err != nil {
		return nil, err
	}
	env := *gonja.DefaultEnvironment
	env.Context = gonja.DefaultContext.Inherit()
	env.Context.Set("raise_exception", func(msg string) (string, error) {
		return "", fmt.Errorf("chat template: %s", msg)
	})
	tmpl, err := exec.NewTemplate("chat_template", cfg, shifted, &env)
	if err != nil {
		return nil, fmt.Errorf("chat template does not compile (%v): the checkpoint's template uses Jinja features gonja lacks; report it with the model name", err)
	}
	return &ChatTemplate{Source: source, BOSToken: bosToken, EOSToken: eosToken, tmpl: tmpl}, nil
}

// Render applies the template to messages; with addGenerationPrompt the
// result ends where the assistant's reply begins.
func (t *ChatTemplate) Render(messages []Message, addGenerationPrompt bool) (string, error) {
	msgs := make([]map[string]any, len(messages))
	for i, m := range messages {
		msgs[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	ctx := exec.NewContext(map[string]any{
		"messages":              msgs,
		"add_generation_prompt": addGenerationPrompt,
		"bos_token":             t.BOSToken,
		"eos_token":             t.EOSToken,
	})
	out, err := t.tmpl.ExecuteToString(ctx)
	if err != nil {
		return "", fmt.Errorf("render chat template: %w", err)
	}
	return out, nil
}

// UserPrompt renders a single user turn followed by the generation prompt.
func (t *ChatTemplate) UserPrompt(content string) (string, error) {
	return t.Render([]Message{{Role: "user", Content: content}}, true)
}
