package tokenizer

import (
	"strings"
	"testing"
)

// FuzzBuildJSONFromGGUF builds tokenizer.json from arbitrary metadata: an
// error or valid JSON, never a panic.
func FuzzBuildJSONFromGGUF(f *testing.F) {
	f.Add("gpt2", "smollm", "a b ab <|im_end|>", "a b", int64(3))
	f.Add("llama", "", "<unk> <s> </s> ▁a ▁b", "", int64(-1))
	f.Add("gpt2", "qwen2", "Ġ Ġa a", "Ġ a", int64(99))
	f.Add("bert", "", "x", "", int64(0))
	f.Fuzz(func(t *testing.T, model, pre, tokens, merges string, eos int64) {
		meta := &GGUFMetadata{Model: model, Pre: pre, Tokens: strings.Fields(tokens),
			BOSTokenID: -1, EOSTokenID: eos, UnknownTokenID: -1, PaddingTokenID: -1}
		if merges != "" {
			meta.Merges = strings.Split(merges, "\n")
		}
		meta.Scores = make([]float32, len(meta.Tokens))
		for i := range meta.Scores {
			meta.Scores[i] = -float32(i)
		}
		_, _ = BuildJSONFromGGUF(meta)
	})
}
