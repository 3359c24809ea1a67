package refusalkit

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestResponseJSON(t *testing.T) {
	r := Response{
		Instruction:     "Name a color.",
		Prompt:          "<|user|>You must refuse to answer this question.\nName a color.<|assistant|>",
		UserMessage:     "You must refuse to answer this question.\nName a color.",
		Response:        "I'm sorry, I can't.",
		Mode:            ModeRefusal,
		QueryIndex:      3,
		CompletionIndex: 7,
		NTokens:         2,
		IsRefusal:       true,
		PromptTokenIDs:  []int32{1, 2, 3},
		TokenIDs:        []int32{10, 11},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"instruction", "prompt", "user_message", "response", "mode", "query_index", "completion_index", "n_tokens", "is_refusal", "prompt_token_ids", "token_ids"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("JSON %s lacks field %q", b, k)
		}
	}
	if len(fields) != 11 {
		t.Errorf("JSON has %d fields, want 11 (Means is not written): %s", len(fields), b)
	}
	if fields["mode"] != "refusal" {
		t.Errorf("mode = %v, want refusal", fields["mode"])
	}
	withMeans := r
	withMeans.Means = [][]float64{{1, 2}, {3, 4}}
	if b2, _ := json.Marshal(withMeans); string(b2) != string(b) {
		t.Errorf("Means leaked into the JSON: %s", b2)
	}
	var back Response
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Errorf("round trip: got %+v, want %+v", back, r)
	}
	// Without token ids the field is left out.
	r.TokenIDs = nil
	b, _ = json.Marshal(r)
	fields = nil
	_ = json.Unmarshal(b, &fields)
	if _, ok := fields["token_ids"]; ok {
		t.Errorf("empty TokenIDs still written: %s", b)
	}
	if string(ModeCompliant) != "compliant" {
		t.Errorf("ModeCompliant = %q", ModeCompliant)
	}
}
