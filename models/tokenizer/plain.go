package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/daulet/tokenizers"
)

// Span is a byte range [Start, End) of a text.
type Span struct{ Start, End int }

// EncodeTemplated tokenizes a rendered prompt (a chat template applied to
// user-supplied text) whose user spans hold the user's text: the template's
// own special tokens are recognized, as Encode recognizes them, while inside
// the user spans special-token spellings (e.g. "<|im_end|>") are plain text,
// so user text can never open or close a turn. Nothing is added (no BOS/EOS
// of the post-processor).
//
// When no special token falls inside a user span (every ordinary prompt),
// the ids are exactly Encode(text, false): the same single call. Otherwise
// the prompt is re-encoded once with special-token parsing off
// (tokenizers.WithEncodeSpecialTokens) in which each of the template's own
// special tokens is stood in for by a twin: a non-special added token with
// the same lstrip, rstrip, single_word and normalized settings, whose
// private-use spelling cannot occur in real text, and whose id is mapped
// back to the template token's. Why twins rather than encoding template and
// user parts one by one: the library splits the text at every added token
// it matches and then normalizes and pre-tokenizes each piece between them
// on its own, some steps depending on where the piece sits (a Metaspace
// pre-tokenizer with prepend_scheme "first" prefixes only the piece at the
// start of the text); with twins the library still splits at exactly the
// template's tokens and at nothing else, so every piece is processed as it
// is in Encode, and the only change is that the user's special-token
// spellings are read as the characters they are. Template text and user
// text between two template tokens are tokenized together, as they would be
// had the user written any other characters. This is checked on every such
// prompt: the same re-encoding with every special token (the user's
// included) stood in for by its twin must give Encode's ids exactly, or an
// error is returned rather than a guess.
func (t *Tokenizer) EncodeTemplated(text string, user []Span) ([]int32, error) {
	if strings.IndexByte(text, 0) >= 0 {
		return nil, fmt.Errorf("tokenizer: text contains a NUL byte, which cannot be encoded")
	}
	for _, u := range user {
		if u.Start < 0 || u.End < u.Start || u.End > len(text) {
			return nil, fmt.Errorf("tokenizer: user span [%d, %d) is outside the text (%d bytes)", u.Start, u.End, len(text))
		}
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.tk == nil {
		return nil, fmt.Errorf("tokenizer: EncodeTemplated on a closed Tokenizer")
	}
	enc := t.tk.EncodeWithOptions(text, false, tokenizers.WithReturnOffsets())
	ids := make([]int32, len(enc.IDs))
	for i, id := range enc.IDs {
		ids[i] = int32(id)
	}
	if len(enc.Offsets) != len(ids) {
		return nil, fmt.Errorf("tokenizer: %d offsets for %d tokens", len(enc.Offsets), len(ids))
	}
	var template, all []specialAt
	forged := false
	for i, id := range ids {
		if !t.special[id] {
			continue
		}
		at := specialAt{id: id, span: Span{int(enc.Offsets[i][0]), int(enc.Offsets[i][1])}}
		all = append(all, at)
		if overlapsAny(tokenCore(text, at.span), user) {
			forged = true
		} else {
			template = append(template, at)
		}
	}
	if !forged {
		return ids, nil
	}
	p, err := t.plainTokenizer()
	if err != nil {
		return nil, err
	}
	if strings.ContainsRune(text, twinMark) {
		return nil, fmt.Errorf("tokenizer: the text contains U+%04X, a private-use character refusalkit reserves to keep user text apart from control tokens", twinMark)
	}
	// The check: with every special token stood in for, Encode's ids come back.
	check, err := p.encode(text, all)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(check, ids) {
		return nil, fmt.Errorf("tokenizer: cannot tokenize special-token spellings in user text as plain text with this tokenizer " +
			"(its special tokens do not split the text the same way when stood in for); parse special tokens explicitly to tokenize the prompt as rendered")
	}
	return p.encode(text, template)
}

// specialAt is a special token found in a text: its id and where it was matched
// (lstrip/rstrip whitespace included).
type specialAt struct {
	id   int32
	span Span
}

// tokenCore is the part of a special token's match that is not the
// whitespace its lstrip/rstrip took in; all of it when it is all whitespace.
func tokenCore(text string, s Span) Span {
	m := text[s.Start:s.End]
	trimmed := strings.TrimLeftFunc(m, unicode.IsSpace)
	core := Span{s.Start + len(m) - len(trimmed), s.End}
	trimmed = strings.TrimRightFunc(trimmed, unicode.IsSpace)
	core.End = core.Start + len(trimmed)
	if core.Start >= core.End {
		return s
	}
	return core
}

// overlapsAny reports whether s shares at least one byte with a span of user.
func overlapsAny(s Span, user []Span) bool {
	for _, u := range user {
		if s.Start < u.End && u.Start < s.End {
			return true
		}
	}
	return false
}

// twinMark opens and twinEnd closes the spelling of every twin token: two
// characters of Unicode's supplementary private-use area B, which no
// tokenizer assigns and no real text contains.
const (
	twinMark = '\U000F0000'
	twinEnd  = '\U000F0001'
)

// twinSpelling is the text of the twin of the k-th special token.
func twinSpelling(k int) string {
	return string(twinMark) + strconv.Itoa(k) + string(twinEnd)
}

// plain is the tokenizer with special-token parsing off and twins added.
type plain struct {
	tk       *tokenizers.Tokenizer
	twinOf   map[int32]string // special token id -> its twin's spelling
	fromTwin map[int32]int32  // twin id -> special token id
}

// plainTokenizer builds the plain tokenizer on first use (most runs never
// need it). Called with t.mu held for reading.
func (t *Tokenizer) plainTokenizer() (*plain, error) {
	t.plainOnce.Do(func() {
		maxID := int32(-1)
		for id := range t.idToToken {
			maxID = max(maxID, id)
		}
		t.plain, t.plainErr = buildPlain(t.data, t.special, int64(maxID))
		if t.plain != nil {
			t.plainCleanup = runtime.AddCleanup(t, func(tk *tokenizers.Tokenizer) { _ = tk.Close() }, t.plain.tk)
		}
	})
	return t.plain, t.plainErr
}

// buildPlain loads data (a tokenizer.json) again with special-token parsing
// off, one twin per special added token appended to its added tokens.
func buildPlain(data []byte, special map[int32]bool, maxID int64) (*plain, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("tokenizer: parsing tokenizer.json: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(doc["added_tokens"]))
	dec.UseNumber()
	var added []map[string]any
	if err := dec.Decode(&added); err != nil {
		return nil, fmt.Errorf("tokenizer: parsing added_tokens: %w", err)
	}
	p := &plain{twinOf: map[int32]string{}, fromTwin: map[int32]int32{}}
	var twins []map[string]any
	for _, a := range added {
		if isSpecial, _ := a["special"].(bool); !isSpecial {
			continue
		}
		n, _ := a["id"].(json.Number)
		id, err := n.Int64()
		if err != nil || !special[int32(id)] {
			continue
		}
		twin := map[string]any{}
		for k, v := range a {
			twin[k] = v
		}
		twin["content"] = twinSpelling(len(twins))
		twin["special"] = false
		twin["id"] = maxID + 1 + int64(len(twins)) // the id the library gives a new token (its own, learnt below, is the one used)
		p.twinOf[int32(id)] = twin["content"].(string)
		twins = append(twins, twin)
	}
	raw, err := json.Marshal(append(added, twins...))
	if err != nil {
		return nil, err
	}
	doc["added_tokens"] = raw
	full, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	if p.tk, err = tokenizers.FromBytes(full, tokenizers.WithEncodeSpecialTokens()); err != nil {
		return nil, fmt.Errorf("tokenizer: loading the plain-text tokenizer: %w", err)
	}
	// Learn each twin's id from the library itself: one token, new to the vocabulary.
	for id, spelling := range p.twinOf {
		got, _ := p.tk.Encode(spelling, false)
		if len(got) != 1 || special[int32(got[0])] {
			_ = p.tk.Close()
			return nil, fmt.Errorf("tokenizer: the stand-in of special token %d encodes to %v, not one new token", id, got)
		}
		if _, dup := p.fromTwin[int32(got[0])]; dup {
			_ = p.tk.Close()
			return nil, fmt.Errorf("tokenizer: two stand-ins of special tokens share id %d", got[0])
		}
		p.fromTwin[int32(got[0])] = id
	}
	return p, nil
}

// encode tokenizes text with special-token parsing off, each special token
// of stand (in text order) replaced by its twin, and the twins' ids mapped
// back to the special tokens'.
func (p *plain) encode(text string, stand []specialAt) ([]int32, error) {
	var sb strings.Builder
	prev := 0
	for _, s := range stand {
		twin, ok := p.twinOf[s.id]
		if !ok || s.span.Start < prev {
			return nil, fmt.Errorf("tokenizer: special token %d at [%d, %d) cannot be stood in for", s.id, s.span.Start, s.span.End)
		}
		sb.WriteString(text[prev:s.span.Start])
		sb.WriteString(twin)
		prev = s.span.End
	}
	sb.WriteString(text[prev:])
	if !utf8.ValidString(sb.String()) && utf8.ValidString(text) {
		return nil, fmt.Errorf("tokenizer: a special token's offsets split a character")
	}
	raw, _ := p.tk.Encode(sb.String(), false)
	out := make([]int32, len(raw))
	k := 0
	for i, r := range raw {
		id := int32(r)
		if orig, ok := p.fromTwin[id]; ok {
			if k >= len(stand) || stand[k].id != orig {
				return nil, fmt.Errorf("tokenizer: the stand-ins of special tokens came back out of order")
			}
			id = orig
			k++
		}
		out[i] = id
	}
	if k != len(stand) {
		return nil, fmt.Errorf("tokenizer: %d of %d stand-ins of special tokens came back", k, len(stand))
	}
	return out, nil
}

// specialAddedTokens returns the ids of a tokenizer.json's special added
// tokens: those the library stops matching when special-token parsing is off.
func specialAddedTokens(data []byte) (map[int32]bool, error) {
	var doc struct {
		AddedTokens []struct {
			ID      int64 `json:"id"`
			Special bool  `json:"special"`
		} `json:"added_tokens"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("tokenizer: parsing tokenizer.json: %w", err)
	}
	special := map[int32]bool{}
	for _, a := range doc.AddedTokens {
		if a.Special && a.ID >= 0 && a.ID <= math.MaxInt32 {
			special[int32(a.ID)] = true
		}
	}
	return special, nil
}
