// Package tokenizer provides text tokenization for chat LMs: a thin wrapper
// around the Hugging Face tokenizers library (through the cgo bindings
// github.com/daulet/tokenizers) plus a pure-Go builder that turns the
// tokenizer metadata of a GGUF file into a Hugging Face tokenizer.json.
//
// This is the only package of the project that uses cgo. Linking needs the
// static library libtokenizers.a, built by tools/setup/tokenizers.sh into
// <repo>/.cache/lib; point the linker at it with:
//
//	export CGO_LDFLAGS="-L<repo>/.cache/lib"
package tokenizer

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/daulet/tokenizers"
)

// Tokenizer encodes text to token ids and back. It is safe for concurrent use;
// Close releases the native resources (a cleanup also does, if it is forgotten).
type Tokenizer struct {
	mu        sync.RWMutex
	tk        *tokenizers.Tokenizer
	cleanup   runtime.Cleanup
	tokenToID map[string]int32
	idToToken map[int32]string
	vocabSize int

	// For EncodeTemplated: the tokenizer.json, the ids of its special added
	// tokens, and the plain-text tokenizer built from them on first use.
	data         []byte
	special      map[int32]bool
	plainOnce    sync.Once
	plain        *plain
	plainErr     error
	plainCleanup runtime.Cleanup
}

// FromJSON loads a tokenizer from the contents of a Hugging Face tokenizer.json.
func FromJSON(data []byte) (*Tokenizer, error) {
	tokenToID, idToToken, err := parseVocabulary(data)
	if err != nil {
		return nil, err
	}
	special, err := specialAddedTokens(data)
	if err != nil {
		return nil, err
	}
	tk, err := tokenizers.FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: loading tokenizer.json: %w", err)
	}
	t := &Tokenizer{tk: tk, tokenToID: tokenToID, idToToken: idToToken, vocabSize: int(tk.VocabSize()),
		data: data, special: special}
	t.cleanup = runtime.AddCleanup(t, func(tk *tokenizers.Tokenizer) { _ = tk.Close() }, tk)
	return t, nil
}

// FromFile loads a tokenizer from a Hugging Face tokenizer.json file.
func FromFile(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := FromJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return t, nil
}

// FromGGUF builds the tokenizer described by a GGUF file's metadata
// (see BuildJSONFromGGUF) and loads it.
func FromGGUF(path string) (*Tokenizer, error) {
	data, err := BuildJSONFromGGUFFile(path)
	if err != nil {
		return nil, err
	}
	return FromJSON(data)
}

// Close releases the native tokenizer. Further calls to Encode fail, Decode
// returns "". Close is idempotent.
func (t *Tokenizer) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tk == nil {
		return nil
	}
	t.cleanup.Stop()
	err := t.tk.Close()
	t.tk = nil
	if t.plain != nil {
		t.plainCleanup.Stop()
		_ = t.plain.tk.Close()
		t.plain = nil
	}
	return err
}

// Encode tokenizes text. Special tokens written in the text (e.g. "<|im_end|>")
// are recognized as such: use it for text the program writes, and
// EncodeTemplated for prompts that hold user text. addSpecial runs the post-processor, which adds
// BOS/EOS tokens if the tokenizer defines them.
//
// The text cannot contain NUL bytes (the native API takes C strings).
func (t *Tokenizer) Encode(text string, addSpecial bool) ([]int32, error) {
	if strings.IndexByte(text, 0) >= 0 {
		return nil, fmt.Errorf("tokenizer: text contains a NUL byte, which cannot be encoded")
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.tk == nil {
		return nil, fmt.Errorf("tokenizer: Encode on a closed Tokenizer")
	}
	ids, _ := t.tk.Encode(text, addSpecial)
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out, nil
}

// Decode turns token ids back into text. skipSpecial drops special tokens.
// Ids that are not in the vocabulary (including negative ones) are ignored.
func (t *Tokenizer) Decode(ids []int32, skipSpecial bool) string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.tk == nil {
		return ""
	}
	u := make([]uint32, 0, len(ids))
	for _, id := range ids {
		if id >= 0 {
			u = append(u, uint32(id))
		}
	}
	return t.tk.Decode(u, skipSpecial)
}

// VocabSize returns the vocabulary size, added tokens included.
func (t *Tokenizer) VocabSize() int {
	return t.vocabSize
}

// TokenID returns the id of a token, spelled as in the vocabulary: special
// tokens as written (e.g. "<|im_end|>"), byte-level BPE tokens in their
// byte-level alphabet (e.g. "Ġhello" for " hello").
func (t *Tokenizer) TokenID(token string) (int32, bool) {
	id, ok := t.tokenToID[token]
	return id, ok
}

// Token returns the vocabulary entry of an id (the inverse of TokenID).
func (t *Tokenizer) Token(id int32) (string, bool) {
	tok, ok := t.idToToken[id]
	return tok, ok
}

// parseVocabulary reads token <-> id from a tokenizer.json: the model's
// vocabulary (a map for BPE/WordPiece/WordLevel, a [piece, score] list for
// Unigram) and the added tokens, which take precedence like in the library.
func parseVocabulary(data []byte) (map[string]int32, map[int32]string, error) {
	var doc struct {
		AddedTokens []struct {
			ID      int64  `json:"id"`
			Content string `json:"content"`
		} `json:"added_tokens"`
		Model struct {
			Vocab json.RawMessage `json:"vocab"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("tokenizer: parsing tokenizer.json: %w", err)
	}
	tokenToID := make(map[string]int32)
	idToToken := make(map[int32]string)
	set := func(tok string, id int64) error {
		if id < 0 || id > math.MaxInt32 {
			return fmt.Errorf("tokenizer: token %q has invalid id %d", tok, id)
		}
		tokenToID[tok] = int32(id)
		idToToken[int32(id)] = tok
		return nil
	}
	if v := doc.Model.Vocab; len(v) > 0 && v[0] == '{' {
		var vocab map[string]int64
		if err := json.Unmarshal(v, &vocab); err != nil {
			return nil, nil, fmt.Errorf("tokenizer: parsing model vocab: %w", err)
		}
		for tok, id := range vocab {
			if err := set(tok, id); err != nil {
				return nil, nil, err
			}
		}
	} else if len(v) > 0 && v[0] == '[' {
		var vocab [][2]any
		if err := json.Unmarshal(v, &vocab); err != nil {
			return nil, nil, fmt.Errorf("tokenizer: parsing model vocab: %w", err)
		}
		for id, e := range vocab {
			tok, ok := e[0].(string)
			if !ok {
				return nil, nil, fmt.Errorf("tokenizer: model vocab entry %d is not [piece, score]", id)
			}
			if _, dup := tokenToID[tok]; !dup {
				if err := set(tok, int64(id)); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	for _, at := range doc.AddedTokens {
		if err := set(at.Content, at.ID); err != nil {
			return nil, nil, err
		}
	}
	return tokenToID, idToToken, nil
}
