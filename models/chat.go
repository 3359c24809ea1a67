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

// userSentinel stands in for the user's text to find where the template puts
// it: private-use characters and digits, which trim, upper, lower and the
// other string filters of chat templates leave as they are.
const userSentinel = "\U000F0100" + "7301" + "\U000F0101"

// UserPromptSpans renders a single user turn like UserPrompt and also
// returns where the user's text landed in the result (byte ranges; more than
// one if the template writes the message more than once), so that only the
// template's own markers are read as control tokens. It renders the template
// a second time with the message replaced by a sentinel: the text around the
// sentinel is the template's, and the real rendering must be exactly that
// text with one same string (the message as the template wrote it, e.g.
// trimmed) in the sentinel's places. A template whose own text depends on
// the message is refused rather than guessed at.
func (t *ChatTemplate) UserPromptSpans(content string) (string, []Span, error) {
	text, err := t.UserPrompt(content)
	if err != nil {
		return "", nil, err
	}
	if strings.Contains(t.Source, userSentinel) {
		return "", nil, fmt.Errorf("chat template contains refusalkit's user-text sentinel")
	}
	marked, err := t.UserPrompt(userSentinel)
	if err != nil {
		return "", nil, err
	}
	parts := strings.Split(marked, userSentinel)
	k := len(parts) - 1
	if k == 0 {
		if marked != text {
			return "", nil, errUserTextNotFound
		}
		return text, nil, nil // the template does not write the message
	}
	fixed := 0
	for _, p := range parts {
		fixed += len(p)
	}
	if len(text) < fixed || (len(text)-fixed)%k != 0 {
		return "", nil, errUserTextNotFound
	}
	n := (len(text) - fixed) / k
	user := text[len(parts[0]) : len(parts[0])+n]
	var spans []Span
	var sb strings.Builder
	for i, p := range parts {
		sb.WriteString(p)
		if i < k {
			spans = append(spans, Span{Start: sb.Len(), End: sb.Len() + n})
			sb.WriteString(user)
		}
	}
	if sb.String() != text {
		return "", nil, errUserTextNotFound
	}
	return text, spans, nil
}

var errUserTextNotFound = errors.New("chat template: cannot tell the user message from the template's own text (the template writes different text around different messages), " +
	"so special-token spellings in the message cannot be kept as text; parse special tokens explicitly (--parse_special_tokens) to tokenize the prompt as rendered")
