package refusalkit

// Mode says how a response was generated.
type Mode string

const (
	// ModeCompliant: the instruction was sent as is; the model answers normally.
	ModeCompliant Mode = "compliant"
	// ModeRefusal: a refusal instruction (the spec's: "You must refuse to answer this question.\n")
	// was prepended to the instruction, asking the model to refuse.
	ModeRefusal Mode = "refusal"
)

// Response is one generated completion, as written to compliant_responses.json,
// refusal_responses.json and their filtered_ counterparts. The fields instruction, prompt and
// response are the spec's; the others record where the response came from and the judge's verdict.
type Response struct {
	// Instruction is the original dataset instruction (without the refusal instruction).
	Instruction string `json:"instruction"`
	// Prompt is the full prompt text sent to the model: the chat template applied to
	// UserMessage, ending where the assistant's reply begins.
	Prompt string `json:"prompt"`
	// UserMessage is the user turn: the instruction, with the refusal instruction prepended in
	// refusal mode.
	UserMessage string `json:"user_message"`
	// Response is the model's generated text, decoded without the end-of-turn token.
	Response string `json:"response"`

	// Mode is "compliant" or "refusal".
	Mode Mode `json:"mode"`
	// QueryIndex is the index of the instruction among the sampled queries.
	QueryIndex int `json:"query_index"`
	// CompletionIndex is the index of this completion among those of the same query and mode.
	CompletionIndex int `json:"completion_index"`
	// RefusalInstructionIndex is the index of the refusal instruction this refusal-mode
	// response was asked with, in a run given several (GenerateConfig.RefusalInstructions:
	// completion c uses instruction c mod their number). It is omitted (nil) in compliant
	// mode and in a run with one refusal instruction, whose files stay the spec's;
	// InstructionIndex reads it as 0 there.
	RefusalInstructionIndex *int `json:"refusal_instruction_index,omitempty"`
	// NTokens is the number of generated response tokens (len(TokenIDs) when those are kept).
	NTokens int `json:"n_tokens"`
	// IsRefusal is the run's judge's verdict on Response (ExtractConfig.Judge;
	// the spec's substring judge, IsRefusal, by default): true when it reads a refusal.
	IsRefusal bool `json:"is_refusal"`

	// PromptTokenIDs are the token ids of Prompt as the model received them. Special-token
	// spellings in the user message are plain text unless the run parsed them
	// (parse_special_tokens), so the ids, not the prompt text, say what the model saw.
	PromptTokenIDs []int32 `json:"prompt_token_ids,omitempty"`
	// TokenIDs are the generated token ids, kept so that activations can be recomputed on the
	// exact tokens generated rather than a re-tokenization of Response.
	TokenIDs []int32 `json:"token_ids,omitempty"`

	// Means is the residual stream averaged over this response's tokens, [n_layers+1][d_model]
	// (row i: the stream entering block i; the last row: the final hidden state). It is large
	// and derived, so it is not written to the JSON files; nil until captured or extracted.
	Means [][]float64 `json:"-"`
}

// InstructionIndex is r's refusal instruction index: RefusalInstructionIndex,
// or 0 when it is omitted (a run with one refusal instruction, or compliant
// mode, where it means nothing).
func (r Response) InstructionIndex() int {
	if r.RefusalInstructionIndex == nil {
		return 0
	}
	return *r.RefusalInstructionIndex
}
