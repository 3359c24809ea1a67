package tokenizer

import (
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/gomlx/go-huggingface/models/gguf"
)

const (
	gemma3Path          = "../../.cache/models/gemma-3-270m-q4_k_m.gguf"
	gemma3ReferencePath = "../../testdata/reference/gemma3_270m_reference.json"
)

// tinyGemma is a Gemma-style SentencePiece vocabulary: no space prefix, merges
// derived in token order, tokens made of spaces stored as real spaces.
func tinyGemma() *GGUFMetadata {
	tokens := []string{"<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "\n", "  ", "<0x21>", "▁", "h", "i", "hi", "▁hi"}
	types := []int32{TokenTypeControl, TokenTypeControl, TokenTypeControl, TokenTypeControl, TokenTypeControl,
		TokenTypeUserDefined, TokenTypeUserDefined, TokenTypeByte,
		TokenTypeNormal, TokenTypeNormal, TokenTypeNormal, TokenTypeNormal, TokenTypeNormal}
	noPrefix := false
	return &GGUFMetadata{
		Architecture: "gemma3", Model: "llama", Pre: "default",
		Tokens: tokens, Scores: make([]float32, len(tokens)), TokenTypes: types,
		BOSTokenID: 2, EOSTokenID: 1, UnknownTokenID: 3, PaddingTokenID: 0,
		AddBOS: true, AddSpacePrefix: &noPrefix,
	}
}

func TestBuildGemmaStructure(t *testing.T) {
	meta := tinyGemma()
	doc := decodeDoc(t, mustBuild(t, meta))
	// The shape transformers' GemmaTokenizer gives a GGUF (checked on Gemma 3 270M:
	// the whole document is identical).
	if got := marshalPlain(t, doc["normalizer"]); got != `{"content":"▁","pattern":{"String":" "},"type":"Replace"}` {
		t.Errorf("normalizer = %s", got)
	}
	if got := marshalPlain(t, doc["pre_tokenizer"]); got != `{"behavior":"MergedWithPrevious","invert":false,"pattern":{"String":" "},"type":"Split"}` {
		t.Errorf("pre_tokenizer = %s", got)
	}
	model := doc["model"].(map[string]any)
	vocab := model["vocab"].(map[string]any)
	// "  " (id 6) is looked up as "▁▁".
	if vocab["▁▁"] != float64(6) {
		t.Errorf(`vocab["▁▁"] = %v, want 6`, vocab["▁▁"])
	}
	if _, ok := vocab["  "]; ok {
		t.Error(`vocab has "  "`)
	}
	// The respelled user-defined token is not an added token (transformers only adds
	// a user-defined token whose file spelling is in the vocabulary); "\n" is.
	var added []string
	for _, a := range doc["added_tokens"].([]any) {
		added = append(added, a.(map[string]any)["content"].(string))
	}
	if want := []string{"<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "\n"}; !slices.Equal(added, want) {
		t.Errorf("added tokens = %q, want %q", added, want)
	}
	// The caller's metadata is left alone.
	if meta.TokenTypes[6] != TokenTypeUserDefined || meta.Tokens[6] != "  " {
		t.Errorf("metadata modified: token %q type %d", meta.Tokens[6], meta.TokenTypes[6])
	}

	tk := mustLoad(t, meta)
	for _, tc := range []struct {
		text string
		want []int32
	}{
		// Checked against transformers' convert_gguf_tokenizer("gemma3", ...) on this vocabulary.
		{"hi", []int32{2, 11}},
		{"hi hi", []int32{2, 11, 12}},
		{"  hi", []int32{2, 6, 11}},
		{"hi\n!", []int32{2, 11, 5, 7}},
		{"<bos>hi", []int32{2, 2, 11}},
	} {
		got := mustEncode(t, tk, tc.text, true)
		if !slices.Equal(got, tc.want) {
			t.Errorf("Encode(%q) = %v, want %v", tc.text, got, tc.want)
		}
		if dec := tk.Decode(got, true); dec != tc.text && tc.text != "<bos>hi" {
			t.Errorf("Decode(%v) = %q, want %q", got, dec, tc.text)
		}
	}
}

func requireGemma3(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(gemma3Path); err != nil {
		t.Skipf("model file %s not available (%v): run bash tools/setup/gemma3.sh to run this test", gemma3Path, err)
	}
}

func TestGemma3Metadata(t *testing.T) {
	requireGemma3(t)
	f, err := gguf.Open(gemma3Path)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := MetadataFromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Architecture != "gemma3" || meta.Model != "llama" || len(meta.Tokens) != 262144 || len(meta.Merges) != 0 ||
		len(meta.Scores) != 262144 || len(meta.TokenTypes) != 262144 || !meta.AddBOS || meta.AddEOS ||
		meta.BOSTokenID != 2 || meta.EOSTokenID != 1 || meta.UnknownTokenID != 3 || meta.PaddingTokenID != 0 ||
		meta.AddSpacePrefix == nil || *meta.AddSpacePrefix || meta.ChatTemplate != "" {
		t.Errorf("metadata: arch %q model %q tokens %d merges %d scores %d types %d add_bos %v add_eos %v bos %d eos %d unk %d pad %d space_prefix %v template %d bytes",
			meta.Architecture, meta.Model, len(meta.Tokens), len(meta.Merges), len(meta.Scores), len(meta.TokenTypes),
			meta.AddBOS, meta.AddEOS, meta.BOSTokenID, meta.EOSTokenID, meta.UnknownTokenID, meta.PaddingTokenID,
			meta.AddSpacePrefix, len(meta.ChatTemplate))
	}
}

// TestGemma3Reference compares against the ids Hugging Face transformers gives
// for Gemma 3 270M's GGUF (tools/reference/make_gemma3_reference.py): the model's
// reference prompts (<bos> added by default) and the extra tokenizer cases.
func TestGemma3Reference(t *testing.T) {
	requireGemma3(t)
	data, err := os.ReadFile(gemma3ReferencePath)
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Prompts []struct {
			Prompt    string  `json:"prompt"`
			PromptIDs []int32 `json:"prompt_ids"`
		} `json:"prompts"`
		Cases []struct {
			Text           string  `json:"text"`
			IDs            []int32 `json:"ids"`
			IDsWithSpecial []int32 `json:"ids_with_special"`
			Decoded        string  `json:"decoded"`
		} `json:"tokenizer_cases"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Prompts) < 3 || len(ref.Cases) < 15 {
		t.Fatalf("only %d prompts and %d tokenizer cases", len(ref.Prompts), len(ref.Cases))
	}

	tk, err := FromGGUF(gemma3Path)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()

	for _, p := range ref.Prompts {
		if got := mustEncode(t, tk, p.Prompt, true); !slices.Equal(got, p.PromptIDs) {
			t.Errorf("Encode(%q, addSpecial):\n got  %v\n want %v", p.Prompt, got, p.PromptIDs)
		}
	}
	for _, c := range ref.Cases {
		got := mustEncode(t, tk, c.Text, false)
		if !slices.Equal(got, c.IDs) {
			t.Errorf("Encode(%q):\n got  %v\n want %v", c.Text, got, c.IDs)
			continue
		}
		if withSpecial := mustEncode(t, tk, c.Text, true); !slices.Equal(withSpecial, c.IDsWithSpecial) {
			t.Errorf("Encode(%q, addSpecial) = %v, want %v", c.Text, withSpecial, c.IDsWithSpecial)
		}
		if dec := tk.Decode(got, false); dec != c.Decoded {
			t.Errorf("Decode(Encode(%q)) = %q, want %q", c.Text, dec, c.Decoded)
		}
	}

	for tok, want := range map[string]int32{"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<start_of_turn>": 105,
		"<end_of_turn>": 106, "\n": 107, "▁▁": 138, "<start_of_image>": 255999} {
		if id, ok := tk.TokenID(tok); !ok || id != want {
			t.Errorf("TokenID(%q) = %d, %v; want %d", tok, id, ok, want)
		}
	}
	if n := tk.VocabSize(); n != 262144 {
		t.Errorf("VocabSize = %d, want 262144", n)
	}
	ids := mustEncode(t, tk, "<start_of_turn>user\nHi<end_of_turn>\n", true)
	if dec := tk.Decode(ids, true); dec != "user\nHi\n" {
		t.Errorf("Decode(skipSpecial) = %q, want %q", dec, "user\nHi\n")
	}
}
