package tokenizer

// This file is pure Go (no cgo, no file I/O): it turns the tokenizer metadata
// stored in a GGUF file into a Hugging Face tokenizer.json document, so that it
// can be unit-tested and fuzzed without the native library.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
)

// GGUF metadata keys read by the builder (llama.cpp naming).
const (
	KeyArchitecture   = "general.architecture"
	KeyModel          = "tokenizer.ggml.model"
	KeyPre            = "tokenizer.ggml.pre"
	KeyTokens         = "tokenizer.ggml.tokens"
	KeyScores         = "tokenizer.ggml.scores"
	KeyTokenType      = "tokenizer.ggml.token_type"
	KeyMerges         = "tokenizer.ggml.merges"
	KeyBOSTokenID     = "tokenizer.ggml.bos_token_id"
	KeyEOSTokenID     = "tokenizer.ggml.eos_token_id"
	KeyUnknownTokenID = "tokenizer.ggml.unknown_token_id"
	KeyPaddingTokenID = "tokenizer.ggml.padding_token_id"
	KeyAddBOS         = "tokenizer.ggml.add_bos_token"
	KeyAddEOS         = "tokenizer.ggml.add_eos_token"
	KeyAddSpacePrefix = "tokenizer.ggml.add_space_prefix"
	KeyChatTemplate   = "tokenizer.chat_template"
)

// Token types of tokenizer.ggml.token_type (llama.cpp's llama_token_type).
const (
	TokenTypeUndefined   int32 = 0
	TokenTypeNormal      int32 = 1
	TokenTypeUnknown     int32 = 2
	TokenTypeControl     int32 = 3
	TokenTypeUserDefined int32 = 4
	TokenTypeUnused      int32 = 5
	TokenTypeByte        int32 = 6
)

// GGUFMetadata is the tokenizer-related subset of a GGUF file's metadata.
//
// Build it with MetadataFromMap (any map of GGUF key -> value, e.g. the
// key/values of a gguf file) or MetadataFromGGUF (a parsed
// github.com/gomlx/go-huggingface/models/gguf File), or fill it by hand.
type GGUFMetadata struct {
	Architecture string    // general.architecture, optional ("gemma*" selects Gemma quirks).
	Model        string    // tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece).
	Pre          string    // tokenizer.ggml.pre: pre-tokenizer name ("smollm", "llama-bpe", "qwen2", ...).
	Tokens       []string  // tokenizer.ggml.tokens, indexed by token id.
	Scores       []float32 // tokenizer.ggml.scores (SentencePiece), optional.
	TokenTypes   []int32   // tokenizer.ggml.token_type, optional (missing = normal).
	Merges       []string  // tokenizer.ggml.merges, "left right" (BPE); optional for "llama".

	// Special token ids; -1 when absent.
	BOSTokenID, EOSTokenID, UnknownTokenID, PaddingTokenID int64

	AddBOS, AddEOS bool  // tokenizer.ggml.add_bos_token / add_eos_token (default false).
	AddSpacePrefix *bool // tokenizer.ggml.add_space_prefix; nil = absent (true for "llama").
	ChatTemplate   string
}

// MetadataFromMap extracts the tokenizer metadata from GGUF key/values.
// Values may be the types GGUF readers produce (string, []string, []float32,
// []int32, any integer, bool, ...) or generic []any (e.g. decoded JSON).
func MetadataFromMap(kv map[string]any) (*GGUFMetadata, error) {
	m := &GGUFMetadata{BOSTokenID: -1, EOSTokenID: -1, UnknownTokenID: -1, PaddingTokenID: -1}
	var err error
	str := func(key string, dst *string) {
		if v, ok := kv[key]; ok && err == nil {
			s, isStr := v.(string)
			if !isStr {
				err = fmt.Errorf("tokenizer: GGUF key %q: want string, got %T", key, v)
				return
			}
			*dst = s
		}
	}
	str(KeyArchitecture, &m.Architecture)
	str(KeyModel, &m.Model)
	str(KeyPre, &m.Pre)
	str(KeyChatTemplate, &m.ChatTemplate)
	if err != nil {
		return nil, err
	}
	if v, ok := kv[KeyTokens]; ok {
		if m.Tokens, err = toStrings(v); err != nil {
			return nil, fmt.Errorf("tokenizer: GGUF key %q: %w", KeyTokens, err)
		}
	}
	if v, ok := kv[KeyMerges]; ok {
		if m.Merges, err = toStrings(v); err != nil {
			return nil, fmt.Errorf("tokenizer: GGUF key %q: %w", KeyMerges, err)
		}
	}
	if v, ok := kv[KeyScores]; ok {
		if m.Scores, err = toFloat32s(v); err != nil {
			return nil, fmt.Errorf("tokenizer: GGUF key %q: %w", KeyScores, err)
		}
	}
	if v, ok := kv[KeyTokenType]; ok {
		ints, err := toInt64s(v)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: GGUF key %q: %w", KeyTokenType, err)
		}
		m.TokenTypes = make([]int32, len(ints))
		for i, t := range ints {
			m.TokenTypes[i] = int32(t)
		}
	}
	for key, dst := range map[string]*int64{
		KeyBOSTokenID: &m.BOSTokenID, KeyEOSTokenID: &m.EOSTokenID,
		KeyUnknownTokenID: &m.UnknownTokenID, KeyPaddingTokenID: &m.PaddingTokenID,
	} {
		if v, ok := kv[key]; ok {
			n, ok := toInt64(v)
			if !ok {
				return nil, fmt.Errorf("tokenizer: GGUF key %q: want integer, got %T", key, v)
			}
			*dst = n
		}
	}
	for key, dst := range map[string]*bool{KeyAddBOS: &m.AddBOS, KeyAddEOS: &m.AddEOS} {
		if v, ok := kv[key]; ok {
			b, ok := v.(bool)
			if !ok {
				return nil, fmt.Errorf("tokenizer: GGUF key %q: want bool, got %T", key, v)
			}
			*dst = b
		}
	}
	if v, ok := kv[KeyAddSpacePrefix]; ok {
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("tokenizer: GGUF key %q: want bool, got %T", KeyAddSpacePrefix, v)
		}
		m.AddSpacePrefix = &b
	}
	return m, nil
}

func toStrings(v any) ([]string, error) {
	switch s := v.(type) {
	case []string:
		return s, nil
	case []any:
		out := make([]string, len(s))
		for i, e := range s {
			str, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("element %d: want string, got %T", i, e)
			}
			out[i] = str
		}
		return out, nil
	}
	return nil, fmt.Errorf("want string array, got %T", v)
}

func toFloat32s(v any) ([]float32, error) {
	switch s := v.(type) {
	case []float32:
		return s, nil
	case []float64:
		out := make([]float32, len(s))
		for i, f := range s {
			out[i] = float32(f)
		}
		return out, nil
	case []any:
		out := make([]float32, len(s))
		for i, e := range s {
			switch f := e.(type) {
			case float64:
				out[i] = float32(f)
			case float32:
				out[i] = f
			default:
				n, ok := toInt64(e)
				if !ok {
					return nil, fmt.Errorf("element %d: want number, got %T", i, e)
				}
				out[i] = float32(n)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("want float array, got %T", v)
}

func toInt64s(v any) ([]int64, error) {
	conv := func(n int, at func(int) (int64, bool)) ([]int64, error) {
		out := make([]int64, n)
		for i := range out {
			x, ok := at(i)
			if !ok {
				return nil, fmt.Errorf("element %d is not an integer", i)
			}
			out[i] = x
		}
		return out, nil
	}
	switch s := v.(type) {
	case []int32:
		return conv(len(s), func(i int) (int64, bool) { return int64(s[i]), true })
	case []int64:
		return s, nil
	case []uint32:
		return conv(len(s), func(i int) (int64, bool) { return int64(s[i]), true })
	case []int8:
		return conv(len(s), func(i int) (int64, bool) { return int64(s[i]), true })
	case []uint8:
		return conv(len(s), func(i int) (int64, bool) { return int64(s[i]), true })
	case []int16:
		return conv(len(s), func(i int) (int64, bool) { return int64(s[i]), true })
	case []uint16:
		return conv(len(s), func(i int) (int64, bool) { return int64(s[i]), true })
	case []uint64:
		return conv(len(s), func(i int) (int64, bool) { return int64(s[i]), s[i] <= math.MaxInt64 })
	case []int:
		return conv(len(s), func(i int) (int64, bool) { return int64(s[i]), true })
	case []any:
		return conv(len(s), func(i int) (int64, bool) { return toInt64(s[i]) })
	}
	return nil, fmt.Errorf("want integer array, got %T", v)
}

func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		return int64(n), n <= math.MaxInt64
	case float64: // JSON numbers.
		return int64(n), n == math.Trunc(n) && math.Abs(n) < 1<<53
	}
	return 0, false
}

// Pre-tokenizer split regexes, as in llama.cpp (src/llama-vocab.cpp), written
// in the Oniguruma syntax used by Hugging Face tokenizers.
const (
	regexGPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	// llama.cpp's LLAMA3 spells the contractions as '[sS]|'[tT]|...; same thing.
	regexLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	regexQwen2  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	regexTekken = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	regexGPT4o  = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// bytePreTokenizer describes how a byte-level BPE vocabulary splits text.
type bytePreTokenizer struct {
	splits       []string // Regex splits (behavior Isolated) applied in order before ByteLevel.
	digits       bool     // Split every digit on its own first (HF Digits(individual_digits)).
	gpt2Regex    bool     // Let ByteLevel apply the GPT-2 regex itself (use_regex=true).
	nfc          bool     // NFC-normalize the input (Qwen2's tokenizer.json does).
	ignoreMerges bool     // Use a word directly when it is in the vocabulary (llama.cpp ignore_merges).
}

// bytePreTokenizers maps tokenizer.ggml.pre to the pre-tokenization llama.cpp uses.
var bytePreTokenizers = map[string]bytePreTokenizer{
	// llama.cpp LLAMA_VOCAB_PRE_TYPE_DEFAULT (also used when "pre" is missing).
	"default": {splits: []string{
		`[\p{P}\$\+<=>\^~\|]+`,
		`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`,
		`\p{N}+`,
		`[0-9][0-9][0-9]`,
	}},
	"gpt2":  {gpt2Regex: true},
	"gpt-2": {gpt2Regex: true},
	"phi-2": {gpt2Regex: true},
	// SmolLM: digits one by one, then the GPT-2 regex; this is exactly SmolLM2's
	// tokenizer.json: Sequence[Digits(individual_digits), ByteLevel(use_regex)].
	"smollm":           {digits: true, gpt2Regex: true},
	"llama3":           {splits: []string{regexLlama3}, ignoreMerges: true},
	"llama-v3":         {splits: []string{regexLlama3}, ignoreMerges: true},
	"llama-bpe":        {splits: []string{regexLlama3}, ignoreMerges: true},
	"falcon3":          {splits: []string{regexLlama3}, ignoreMerges: true},
	"pixtral":          {splits: []string{regexLlama3}, ignoreMerges: true},
	"smaug-bpe":        {splits: []string{regexLlama3}},
	"dbrx":             {splits: []string{regexLlama3}},
	"qwen2":            {splits: []string{regexQwen2}, nfc: true},
	"deepseek-r1-qwen": {splits: []string{regexQwen2}, nfc: true},
	"tekken":           {splits: []string{regexTekken}, ignoreMerges: true},
	"gpt-4o":           {splits: []string{regexGPT4o}},
	"llama4":           {splits: []string{regexGPT4o}},
}

// SupportedPreTokenizers lists the tokenizer.ggml.pre values BuildJSONFromGGUF accepts
// for byte-level BPE vocabularies (the empty string means "default").
func SupportedPreTokenizers() []string {
	names := make([]string, 0, len(bytePreTokenizers))
	for name := range bytePreTokenizers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// BuildJSONFromGGUF builds a Hugging Face tokenizer.json from GGUF tokenizer metadata.
//
// Supported tokenizer.ggml.model values:
//   - "gpt2": byte-level BPE (vocabulary, merges, pre-tokenizer selected by
//     tokenizer.ggml.pre as llama.cpp does).
//   - "llama": SentencePiece BPE with byte fallback, converted like Hugging Face's
//     LlamaTokenizerFast / GemmaTokenizer (merges taken from the file or derived
//     from the scores).
//
// Control (and unknown) tokens become special added tokens, user-defined tokens
// non-special added tokens; all are matched whole in the input text. BOS/EOS
// are only added by the post-processor when tokenizer.ggml.add_bos_token /
// add_eos_token are true.
//
// The unknown token id is only used for "llama" (byte-level BPE needs none).
// The result is meant to always load in Hugging Face tokenizers (merges are
// checked against the vocabulary, as the library does).
func BuildJSONFromGGUF(meta *GGUFMetadata) ([]byte, error) {
	if meta == nil {
		return nil, fmt.Errorf("tokenizer: nil GGUF metadata")
	}
	if meta.Model == "" {
		return nil, fmt.Errorf("tokenizer: GGUF metadata has no %s", KeyModel)
	}
	if meta.Model != "gpt2" && meta.Model != "llama" {
		return nil, fmt.Errorf("tokenizer: unsupported GGUF tokenizer model %s=%q (supported: \"gpt2\", \"llama\")", KeyModel, meta.Model)
	}
	n := len(meta.Tokens)
	if n == 0 {
		return nil, fmt.Errorf("tokenizer: GGUF metadata has no %s", KeyTokens)
	}
	if n > math.MaxUint32/2 {
		return nil, fmt.Errorf("tokenizer: too many tokens (%d)", n)
	}
	if len(meta.TokenTypes) != 0 && len(meta.TokenTypes) != n {
		return nil, fmt.Errorf("tokenizer: %s has %d entries for %d tokens", KeyTokenType, len(meta.TokenTypes), n)
	}
	if len(meta.Scores) != 0 && len(meta.Scores) != n {
		return nil, fmt.Errorf("tokenizer: %s has %d entries for %d tokens", KeyScores, len(meta.Scores), n)
	}
	for _, s := range []struct {
		key string
		id  int64
	}{{KeyBOSTokenID, meta.BOSTokenID}, {KeyEOSTokenID, meta.EOSTokenID}, {KeyUnknownTokenID, meta.UnknownTokenID}, {KeyPaddingTokenID, meta.PaddingTokenID}} {
		if s.id >= int64(n) || s.id < -1 {
			return nil, fmt.Errorf("tokenizer: %s=%d out of range [0, %d)", s.key, s.id, n)
		}
	}
	if meta.AddBOS && meta.BOSTokenID < 0 {
		return nil, fmt.Errorf("tokenizer: %s is true but %s is missing", KeyAddBOS, KeyBOSTokenID)
	}
	if meta.AddEOS && meta.EOSTokenID < 0 {
		return nil, fmt.Errorf("tokenizer: %s is true but %s is missing", KeyAddEOS, KeyEOSTokenID)
	}
	for i, tok := range meta.Tokens {
		if !utf8.ValidString(tok) {
			return nil, fmt.Errorf("tokenizer: token %d (%q) is not valid UTF-8", i, tok)
		}
	}

	var doc *tokenizerJSON
	var err error
	if meta.Model == "gpt2" {
		doc, err = buildByteLevelBPE(meta)
	} else {
		doc, err = buildSentencePiece(meta)
	}
	if err != nil {
		return nil, err
	}
	doc.PostProcessor = templateProcessor(meta, doc.PostProcessor)
	// Like json.Marshal, but keeps "<|im_end|>" readable (no HTML escaping).
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("tokenizer: encoding tokenizer.json: %w", err)
	}
	return buf.Bytes(), nil
}

// tokenizerJSON mirrors the top level of a Hugging Face tokenizer.json.
type tokenizerJSON struct {
	Version       string       `json:"version"`
	Truncation    any          `json:"truncation"`
	Padding       any          `json:"padding"`
	AddedTokens   []addedToken `json:"added_tokens"`
	Normalizer    any          `json:"normalizer"`
	PreTokenizer  any          `json:"pre_tokenizer"`
	PostProcessor any          `json:"post_processor"`
	Decoder       any          `json:"decoder"`
	Model         bpeModel     `json:"model"`
}

type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type bpeModel struct {
	Type                    string         `json:"type"`
	Dropout                 *float64       `json:"dropout"`
	UnkToken                *string        `json:"unk_token"`
	ContinuingSubwordPrefix *string        `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string        `json:"end_of_word_suffix"`
	FuseUnk                 bool           `json:"fuse_unk"`
	ByteFallback            bool           `json:"byte_fallback"`
	IgnoreMerges            bool           `json:"ignore_merges"`
	Vocab                   map[string]int `json:"vocab"`
	Merges                  [][2]string    `json:"merges"`
}

type obj = map[string]any

func (m *GGUFMetadata) tokenType(id int) int32 {
	if len(m.TokenTypes) == 0 {
		return TokenTypeNormal
	}
	return m.TokenTypes[id]
}

// addedTokens returns the tokens that must be matched whole in the input:
// control and unknown tokens (special) and user-defined tokens (not special).
func addedTokens(meta *GGUFMetadata) []addedToken {
	out := []addedToken{} // Never null: the library wants a list.
	seen := make(map[string]bool)
	for id, tok := range meta.Tokens {
		t := meta.tokenType(id)
		special := t == TokenTypeControl || t == TokenTypeUnknown
		if (!special && t != TokenTypeUserDefined) || tok == "" || seen[tok] {
			continue
		}
		seen[tok] = true
		out = append(out, addedToken{ID: id, Content: tok, Special: special})
	}
	return out
}

// vocabulary returns token -> id; the first id wins for duplicated tokens.
func vocabulary(tokens []string, spell func(id int, tok string) string) map[string]int {
	vocab := make(map[string]int, len(tokens))
	for id, tok := range tokens {
		key := spell(id, tok)
		if _, dup := vocab[key]; !dup {
			vocab[key] = id
		}
	}
	return vocab
}

// byteToRune is GPT-2's bytes_to_unicode table; runeToByte its inverse.
var byteToRune, runeToByte = func() ([256]rune, map[rune]byte) {
	var b2r [256]rune
	r2b := make(map[rune]byte, 256)
	next := rune(256)
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			b2r[b] = rune(b)
		} else {
			b2r[b] = next
			next++
		}
		r2b[b2r[b]] = byte(b)
	}
	return b2r, r2b
}()

// inByteAlphabet reports whether tok is spelled with GPT-2's byte-level alphabet.
func inByteAlphabet(tok string) bool {
	for _, r := range tok {
		if _, ok := runeToByte[r]; !ok {
			return false
		}
	}
	return true
}

// byteLevelSpelling rewrites the UTF-8 bytes of s in GPT-2's byte-level alphabet.
func byteLevelSpelling(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		sb.WriteRune(byteToRune[s[i]])
	}
	return sb.String()
}

func buildByteLevelBPE(meta *GGUFMetadata) (*tokenizerJSON, error) {
	preName := meta.Pre
	if preName == "" {
		preName = "default" // As llama.cpp does when the key is missing.
	}
	pre, ok := bytePreTokenizers[preName]
	if !ok {
		return nil, fmt.Errorf("tokenizer: unsupported GGUF pre-tokenizer %s=%q for %s=\"gpt2\" (supported: %s)",
			KeyPre, meta.Pre, KeyModel, strings.Join(SupportedPreTokenizers(), ", "))
	}

	// Vocabulary: normal tokens are stored in the byte-level alphabet; a token
	// that is not (a llama.cpp convention for added tokens) is respelled, as
	// transformers' GGUF loader does, except control / user-defined ones, which
	// keep their raw text so that they map to their own id as added tokens.
	vocab := vocabulary(meta.Tokens, func(id int, tok string) string {
		t := meta.tokenType(id)
		if t == TokenTypeControl || t == TokenTypeUserDefined || inByteAlphabet(tok) {
			return tok
		}
		return byteLevelSpelling(tok)
	})
	merges, err := parseMerges(meta.Merges, vocab)
	if err != nil {
		return nil, err
	}

	var preTokenizers []any
	for _, re := range pre.splits {
		preTokenizers = append(preTokenizers, obj{"type": "Split", "pattern": obj{"Regex": re}, "behavior": "Isolated", "invert": false})
	}
	if pre.digits {
		preTokenizers = append(preTokenizers, obj{"type": "Digits", "individual_digits": true})
	}
	preTokenizers = append(preTokenizers, obj{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": pre.gpt2Regex})
	var preTokenizer any = preTokenizers[0]
	if len(preTokenizers) > 1 {
		preTokenizer = obj{"type": "Sequence", "pretokenizers": preTokenizers}
	}
	var normalizer any
	if pre.nfc {
		normalizer = obj{"type": "NFC"}
	}
	return &tokenizerJSON{
		Version:       "1.0",
		AddedTokens:   addedTokens(meta),
		Normalizer:    normalizer,
		PreTokenizer:  preTokenizer,
		PostProcessor: obj{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
		Decoder:       obj{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		Model: bpeModel{
			Type:         "BPE",
			IgnoreMerges: pre.ignoreMerges,
			Vocab:        vocab,
			Merges:       merges,
		},
	}, nil
}

// parseMerges splits GGUF merges ("left right") the way llama.cpp does (at the
// first space after the first byte) and checks that the parts and their
// concatenation are in the vocabulary (Hugging Face BPE refuses them otherwise).
func parseMerges(lines []string, vocab map[string]int) ([][2]string, error) {
	merges := make([][2]string, 0, len(lines))
	for i, line := range lines {
		pos := -1
		if len(line) > 1 {
			if p := strings.IndexByte(line[1:], ' '); p >= 0 {
				pos = p + 1
			}
		}
		if pos < 0 || pos == len(line)-1 {
			return nil, fmt.Errorf("tokenizer: merge %d (%q) is not of the form \"left right\"", i, line)
		}
		left, right := line[:pos], line[pos+1:]
		if err := checkMerge(i, left, right, vocab); err != nil {
			return nil, err
		}
		merges = append(merges, [2]string{left, right})
	}
	return merges, nil
}

func checkMerge(i int, left, right string, vocab map[string]int) error {
	for _, part := range []string{left, right, left + right} {
		if _, ok := vocab[part]; !ok {
			return fmt.Errorf("tokenizer: merge %d (%q + %q) uses %q, which is not in the vocabulary", i, left, right, part)
		}
	}
	return nil
}

const spmSpace = "\u2581" // "▁", SentencePiece's visible space.

func buildSentencePiece(meta *GGUFMetadata) (*tokenizerJSON, error) {
	// tokenizer.ggml.pre is ignored for SentencePiece vocabularies, as in llama.cpp.
	gemma := strings.HasPrefix(meta.Architecture, "gemma")
	tokens := meta.Tokens
	addedTypes, cloned := meta.TokenTypes, false
	if gemma {
		// Gemma files store tokens made of spaces as real spaces, but the
		// tokenizer looks them up as "▁▁..." (as transformers' GGUF loader does).
		// Such a token (Gemma 3: ids 138-167, user-defined) stays an ordinary
		// vocabulary entry: transformers only adds a user-defined token when the
		// file's spelling is in the vocabulary, which "  " no longer is.
		tokens = slices.Clone(tokens)
		for i, tok := range tokens {
			if tok != "" && strings.Trim(tok, " ") == "" {
				tokens[i] = strings.Repeat(spmSpace, len(tok))
				if meta.tokenType(i) == TokenTypeUserDefined {
					if !cloned {
						addedTypes, cloned = slices.Clone(meta.TokenTypes), true
					}
					addedTypes[i] = TokenTypeNormal
				}
			}
		}
	}
	vocab := vocabulary(tokens, func(_ int, tok string) string { return tok })

	var merges [][2]string
	var err error
	if len(meta.Merges) > 0 {
		merges, err = parseMerges(meta.Merges, vocab)
		if err != nil {
			return nil, err
		}
	} else {
		// Derive the merges from the vocabulary like transformers'
		// generate_merges: every split of a token into two vocabulary pieces,
		// ranked by the token's score (best first). Gemma's scores do not follow
		// its merge order, its token order does.
		scores := make([]float64, len(tokens))
		for i := range scores {
			switch {
			case gemma || len(meta.Scores) == 0:
				scores[i] = -float64(i)
			default:
				scores[i] = float64(meta.Scores[i])
			}
		}
		merges = generateMerges(tokens, vocab, scores)
	}

	addSpacePrefix := true // llama.cpp's default for SentencePiece.
	if meta.AddSpacePrefix != nil {
		addSpacePrefix = *meta.AddSpacePrefix
	}
	var unk *string
	if meta.UnknownTokenID >= 0 {
		unk = &tokens[meta.UnknownTokenID]
	} else if id, ok := vocab["<unk>"]; ok {
		unk = &tokens[id]
	}

	doc := &tokenizerJSON{
		Version:     "1.0",
		AddedTokens: addedTokens(&GGUFMetadata{Tokens: tokens, TokenTypes: addedTypes}),
		Model: bpeModel{
			Type:         "BPE",
			UnkToken:     unk,
			FuseUnk:      true,
			ByteFallback: true,
			Vocab:        vocab,
			Merges:       merges,
		},
	}
	decoders := []any{
		obj{"type": "Replace", "pattern": obj{"String": spmSpace}, "content": " "},
		obj{"type": "ByteFallback"},
		obj{"type": "Fuse"},
	}
	if addSpacePrefix {
		// LlamaTokenizerFast: prepend "▁" to the first piece of text, spaces -> "▁".
		doc.PreTokenizer = obj{"type": "Metaspace", "replacement": spmSpace, "prepend_scheme": "first", "split": false}
		decoders = append(decoders, obj{"type": "Strip", "content": " ", "start": 1, "stop": 0})
	} else {
		// GemmaTokenizer: only spaces -> "▁".
		doc.Normalizer = obj{"type": "Replace", "pattern": obj{"String": " "}, "content": spmSpace}
		if gemma {
			// GemmaTokenizer's pre-tokenizer too. It never splits anything (the
			// normalizer has already replaced every space), but with it the
			// document is the one transformers builds from the file.
			doc.PreTokenizer = obj{"type": "Split", "pattern": obj{"String": " "}, "behavior": "MergedWithPrevious", "invert": false}
		}
	}
	doc.Decoder = obj{"type": "Sequence", "decoders": decoders}
	return doc, nil
}

// generateMerges ports transformers' generate_merges (tokenization_utils_base.py).
func generateMerges(tokens []string, vocab map[string]int, scores []float64) [][2]string {
	type merge struct {
		left, right string
		score       float64
	}
	var merges []merge
	for id, tok := range tokens {
		if vocab[tok] != id { // Duplicate: transformers iterates a dict.
			continue
		}
		var local []merge
		for i := 1; i < len(tok); i++ {
			// transformers splits on characters, not bytes.
			if !utf8.RuneStart(tok[i]) {
				continue
			}
			left, right := tok[:i], tok[i:]
			if _, ok := vocab[left]; !ok {
				continue
			}
			if _, ok := vocab[right]; !ok {
				continue
			}
			local = append(local, merge{left, right, scores[id]})
		}
		slices.SortStableFunc(local, func(a, b merge) int {
			if c := vocab[a.left] - vocab[b.left]; c != 0 {
				return c
			}
			return vocab[a.right] - vocab[b.right]
		})
		merges = append(merges, local...)
	}
	// sorted(key=(score, len(left), len(right)), reverse=True), stable. Python
	// measures lengths in characters.
	slices.SortStableFunc(merges, func(a, b merge) int {
		switch {
		case a.score != b.score:
			if a.score > b.score {
				return -1
			}
			return 1
		case utf8.RuneCountInString(a.left) != utf8.RuneCountInString(b.left):
			return utf8.RuneCountInString(b.left) - utf8.RuneCountInString(a.left)
		default:
			return utf8.RuneCountInString(b.right) - utf8.RuneCountInString(a.right)
		}
	})
	out := make([][2]string, len(merges))
	for i, m := range merges {
		out[i] = [2]string{m.left, m.right}
	}
	return out
}

// templateProcessor returns a TemplateProcessing post-processor adding BOS
// and/or EOS when the metadata asks for it, else fallback.
func templateProcessor(meta *GGUFMetadata, fallback any) any {
	if !meta.AddBOS && !meta.AddEOS {
		return fallback
	}
	special := obj{}
	tok := func(id int64) obj {
		content := meta.Tokens[id]
		special[content] = obj{"id": content, "ids": []int64{id}, "tokens": []string{content}}
		return obj{"SpecialToken": obj{"id": content, "type_id": 0}}
	}
	seq := func(name string, typeID int) []any {
		var parts []any
		if meta.AddBOS {
			t := tok(meta.BOSTokenID)
			t["SpecialToken"].(obj)["type_id"] = typeID
			parts = append(parts, t)
		}
		parts = append(parts, obj{"Sequence": obj{"id": name, "type_id": typeID}})
		if meta.AddEOS {
			t := tok(meta.EOSTokenID)
			t["SpecialToken"].(obj)["type_id"] = typeID
			parts = append(parts, t)
		}
		return parts
	}
	single := seq("A", 0)
	pair := append(seq("A", 0), seq("B", 1)...)
	return obj{"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": special}
}
