package tokenizer

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// tinyGPT2 is a hand-made byte-level BPE vocabulary: "ab", "abc", "Ġa", "Ġab"
// and "12" can be merged.
func tinyGPT2() *GGUFMetadata {
	tokens := []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "c", "Ġ", "1", "2", "ab", "abc", "Ġa", "Ġab", "12", "a b", "<think>"}
	types := make([]int32, len(tokens))
	for i := range types {
		types[i] = TokenTypeNormal
	}
	types[0], types[1], types[2] = TokenTypeControl, TokenTypeControl, TokenTypeControl
	types[15] = TokenTypeUserDefined
	return &GGUFMetadata{
		Model:      "gpt2",
		Pre:        "smollm",
		Tokens:     tokens,
		TokenTypes: types,
		Merges:     []string{"a b", "ab c", "Ġ a", "Ġ ab", "1 2"},
		BOSTokenID: 1, EOSTokenID: 2, UnknownTokenID: -1, PaddingTokenID: -1,
	}
}

func decodeDoc(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	return doc
}

// marshalPlain is json.Marshal without HTML escaping.
func marshalPlain(t *testing.T, v any) string {
	t.Helper()
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(sb.String(), "\n")
}

func mustBuild(t *testing.T, meta *GGUFMetadata) []byte {
	t.Helper()
	data, err := BuildJSONFromGGUF(meta)
	if err != nil {
		t.Fatalf("BuildJSONFromGGUF: %v", err)
	}
	return data
}

func TestBuildGPT2Structure(t *testing.T) {
	doc := decodeDoc(t, mustBuild(t, tinyGPT2()))
	model := doc["model"].(map[string]any)
	if model["type"] != "BPE" || model["byte_fallback"] != false || model["ignore_merges"] != false {
		t.Errorf("model = type %v byte_fallback %v ignore_merges %v", model["type"], model["byte_fallback"], model["ignore_merges"])
	}
	vocab := model["vocab"].(map[string]any)
	if len(vocab) != 16 || vocab["Ġab"] != 12.0 || vocab["<|im_end|>"] != 2.0 {
		t.Errorf("vocab = %v", vocab)
	}
	// A normal token outside the byte-level alphabet is respelled.
	if vocab["aĠb"] != 14.0 {
		t.Errorf("token 14 %q not respelled as %q: %v", "a b", "aĠb", vocab)
	}
	wantMerges := []any{[]any{"a", "b"}, []any{"ab", "c"}, []any{"Ġ", "a"}, []any{"Ġ", "ab"}, []any{"1", "2"}}
	if !reflect.DeepEqual(model["merges"], wantMerges) {
		t.Errorf("merges = %v, want %v", model["merges"], wantMerges)
	}
	var added []string
	for _, a := range doc["added_tokens"].([]any) {
		a := a.(map[string]any)
		added = append(added, a["content"].(string))
		wantSpecial := a["content"] != "<think>"
		if a["special"] != wantSpecial || a["normalized"] != false {
			t.Errorf("added token %v: special/normalized wrong", a)
		}
	}
	if want := []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>"}; !slices.Equal(added, want) {
		t.Errorf("added tokens = %v, want %v", added, want)
	}
	pre := doc["pre_tokenizer"].(map[string]any)
	if pre["type"] != "Sequence" {
		t.Fatalf("smollm pre_tokenizer = %v", pre)
	}
	subs := pre["pretokenizers"].([]any)
	if len(subs) != 2 || subs[0].(map[string]any)["type"] != "Digits" || subs[1].(map[string]any)["use_regex"] != true {
		t.Errorf("smollm pre_tokenizer = %v", pre)
	}
	if doc["normalizer"] != nil {
		t.Errorf("normalizer = %v, want null", doc["normalizer"])
	}
	if pp := doc["post_processor"].(map[string]any); pp["type"] != "ByteLevel" {
		t.Errorf("post_processor = %v, want ByteLevel (no BOS)", pp)
	}
}

func TestBuildGPT2PreTokenizers(t *testing.T) {
	for _, tc := range []struct {
		pre          string
		splits       int
		nfc          bool
		ignoreMerges bool
	}{
		{"", 4, false, false}, // Missing: llama.cpp's "default".
		{"default", 4, false, false},
		{"gpt2", 0, false, false},
		{"llama-bpe", 1, false, true},
		{"llama3", 1, false, true},
		{"qwen2", 1, true, false},
	} {
		meta := tinyGPT2()
		meta.Pre = tc.pre
		doc := decodeDoc(t, mustBuild(t, meta))
		pre := doc["pre_tokenizer"].(map[string]any)
		var subs []any
		if pre["type"] == "Sequence" {
			subs = pre["pretokenizers"].([]any)
		} else {
			subs = []any{pre}
		}
		splits := 0
		for _, s := range subs {
			if s.(map[string]any)["type"] == "Split" {
				splits++
			}
		}
		last := subs[len(subs)-1].(map[string]any)
		if splits != tc.splits || last["type"] != "ByteLevel" || last["use_regex"] != (tc.splits == 0) {
			t.Errorf("pre %q: pre_tokenizer = %v", tc.pre, pre)
		}
		if hasNFC := doc["normalizer"] != nil; hasNFC != tc.nfc {
			t.Errorf("pre %q: normalizer = %v", tc.pre, doc["normalizer"])
		}
		if im := doc["model"].(map[string]any)["ignore_merges"]; im != tc.ignoreMerges {
			t.Errorf("pre %q: ignore_merges = %v", tc.pre, im)
		}
	}
	meta := tinyGPT2()
	meta.Pre = "llama3"
	pre := decodeDoc(t, mustBuild(t, meta))["pre_tokenizer"].(map[string]any)
	split := pre["pretokenizers"].([]any)[0].(map[string]any)
	if split["pattern"].(map[string]any)["Regex"] != regexLlama3 || split["behavior"] != "Isolated" {
		t.Errorf("llama3 split = %v", split)
	}
}

func TestBuildErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(m *GGUFMetadata)
		want string
	}{
		"unknown model":      {func(m *GGUFMetadata) { m.Model = "bert" }, `"bert"`},
		"missing model":      {func(m *GGUFMetadata) { m.Model = "" }, KeyModel},
		"unknown pre":        {func(m *GGUFMetadata) { m.Pre = "klingon" }, `"klingon"`},
		"no tokens":          {func(m *GGUFMetadata) { m.Tokens = nil; m.TokenTypes = nil }, KeyTokens},
		"types length":       {func(m *GGUFMetadata) { m.TokenTypes = m.TokenTypes[:3] }, KeyTokenType},
		"bad merge":          {func(m *GGUFMetadata) { m.Merges = append(m.Merges, "b c") }, `"bc"`},
		"merge without sep":  {func(m *GGUFMetadata) { m.Merges = append(m.Merges, "abc") }, "left right"},
		"bos out of range":   {func(m *GGUFMetadata) { m.BOSTokenID = 99 }, KeyBOSTokenID},
		"add_bos without id": {func(m *GGUFMetadata) { m.AddBOS = true; m.BOSTokenID = -1 }, KeyAddBOS},
		"invalid utf8":       {func(m *GGUFMetadata) { m.Tokens[5] = "\xff" }, "UTF-8"},
	} {
		meta := tinyGPT2()
		tc.edit(meta)
		_, err := BuildJSONFromGGUF(meta)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got error %v, want one mentioning %s", name, err, tc.want)
		}
	}
	if _, err := BuildJSONFromGGUF(nil); err == nil {
		t.Error("nil metadata: no error")
	}
}

func TestBuildAddBOS(t *testing.T) {
	meta := tinyGPT2()
	meta.AddBOS = true
	pp := decodeDoc(t, mustBuild(t, meta))["post_processor"].(map[string]any)
	if pp["type"] != "TemplateProcessing" {
		t.Fatalf("post_processor = %v", pp)
	}
	single := marshalPlain(t, pp["single"])
	if want := `[{"SpecialToken":{"id":"<|im_start|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}]`; string(single) != want {
		t.Errorf("single = %s, want %s", single, want)
	}
	special := marshalPlain(t, pp["special_tokens"])
	if want := `{"<|im_start|>":{"id":"<|im_start|>","ids":[1],"tokens":["<|im_start|>"]}}`; string(special) != want {
		t.Errorf("special_tokens = %s, want %s", special, want)
	}
}

func TestMetadataFromMap(t *testing.T) {
	kv := map[string]any{
		KeyArchitecture:   "llama",
		KeyModel:          "gpt2",
		KeyPre:            "smollm",
		KeyTokens:         []string{"a", "b", "ab"},
		KeyTokenType:      []int32{1, 1, 3},
		KeyMerges:         []any{"a b"}, // Generic arrays are accepted too.
		KeyScores:         []float32{0, -1, -2},
		KeyBOSTokenID:     uint32(2),
		KeyEOSTokenID:     uint32(1),
		KeyAddBOS:         false,
		KeyAddSpacePrefix: false,
		"general.name":    "ignored",
	}
	m, err := MetadataFromMap(kv)
	if err != nil {
		t.Fatal(err)
	}
	want := &GGUFMetadata{
		Architecture: "llama", Model: "gpt2", Pre: "smollm",
		Tokens: []string{"a", "b", "ab"}, TokenTypes: []int32{1, 1, 3}, Merges: []string{"a b"}, Scores: []float32{0, -1, -2},
		BOSTokenID: 2, EOSTokenID: 1, UnknownTokenID: -1, PaddingTokenID: -1, AddSpacePrefix: new(bool),
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("MetadataFromMap = %+v\nwant %+v", m, want)
	}
	kv[KeyTokens] = []int32{1, 2}
	if _, err := MetadataFromMap(kv); err == nil || !strings.Contains(err.Error(), KeyTokens) {
		t.Errorf("wrong tokens type: err = %v", err)
	}
}

// tinySPM is a hand-made SentencePiece vocabulary with byte fallback.
func tinySPM() *GGUFMetadata {
	tokens := []string{"<unk>", "<s>", "</s>", "<0x21>", "<0x0A>", "▁", "h", "e", "l", "o", "he", "ll", "hell", "hello", "▁hello", "▁w", "w"}
	scores := []float32{0, 0, 0, 0, 0, -1, -2, -3, -4, -5, -10, -9, -8, -7, -6, -11, -12}
	types := make([]int32, len(tokens))
	for i := range types {
		types[i] = TokenTypeNormal
	}
	types[0] = TokenTypeUnknown
	types[1], types[2] = TokenTypeControl, TokenTypeControl
	types[3], types[4] = TokenTypeByte, TokenTypeByte
	return &GGUFMetadata{
		Architecture: "llama", Model: "llama", Pre: "default",
		Tokens: tokens, Scores: scores, TokenTypes: types,
		BOSTokenID: 1, EOSTokenID: 2, UnknownTokenID: 0, PaddingTokenID: -1,
	}
}

func TestBuildSentencePieceStructure(t *testing.T) {
	doc := decodeDoc(t, mustBuild(t, tinySPM()))
	model := doc["model"].(map[string]any)
	if model["byte_fallback"] != true || model["fuse_unk"] != true || model["unk_token"] != "<unk>" {
		t.Errorf("model = %v", model)
	}
	// Merges derived from the scores (best first), like transformers' generate_merges.
	got := marshalPlain(t, model["merges"])
	want := `[["▁","hello"],["hell","o"],["he","ll"],["l","l"],["h","e"],["▁","w"]]`
	if string(got) != want {
		t.Errorf("merges = %s\nwant     %s", got, want)
	}
	if pre := doc["pre_tokenizer"].(map[string]any); pre["type"] != "Metaspace" || pre["prepend_scheme"] != "first" {
		t.Errorf("pre_tokenizer = %v", pre)
	}
	var added []string
	for _, a := range doc["added_tokens"].([]any) {
		added = append(added, a.(map[string]any)["content"].(string))
	}
	if want := []string{"<unk>", "<s>", "</s>"}; !slices.Equal(added, want) {
		t.Errorf("added tokens = %v, want %v", added, want)
	}

	// Without the space prefix: Gemma-style normalizer, no pre-tokenizer.
	meta := tinySPM()
	meta.AddSpacePrefix = new(bool)
	doc = decodeDoc(t, mustBuild(t, meta))
	if doc["pre_tokenizer"] != nil || doc["normalizer"].(map[string]any)["type"] != "Replace" {
		t.Errorf("add_space_prefix=false: pre_tokenizer %v normalizer %v", doc["pre_tokenizer"], doc["normalizer"])
	}
}

func TestGenerateMergesOrder(t *testing.T) {
	// Equal scores: longer left piece first, then longer right piece, then vocabulary order.
	tokens := []string{"a", "b", "c", "ab", "bc", "abc"}
	vocab := vocabulary(tokens, func(_ int, tok string) string { return tok })
	got := generateMerges(tokens, vocab, []float64{0, 0, 0, -1, -1, -1})
	// Checked against transformers.tokenization_utils_base.generate_merges.
	want := [][2]string{{"ab", "c"}, {"a", "bc"}, {"a", "b"}, {"b", "c"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("generateMerges = %v, want %v", got, want)
	}
}
