package runs

import (
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/judge"
)

// Metadata is metadata.json: the spec's fields first, then the provenance
// a researcher needs to reproduce the run, then what decides its reuse.
//
// Refusal instructions: RefusalInstruction is the spec's field, the run's
// refusal instruction; a run given several holds the first there (the one
// completion 0 of every query used), and RefusalInstructions lists them all,
// in order. RefusalKeptByInstruction splits the refusal counts by
// instruction, in that order; they add up to NRefusalResponsesGenerated and
// NRefusalResponsesKept.
type Metadata struct {
	NQueries                     int               `json:"n_queries"`
	NCompletionsPerQuery         int               `json:"n_completions_per_query"`
	NCompliantResponsesGenerated int               `json:"n_compliant_responses_generated"`
	NRefusalResponsesGenerated   int               `json:"n_refusal_responses_generated"`
	NCompliantResponsesKept      int               `json:"n_compliant_responses_kept"`
	NRefusalResponsesKept        int               `json:"n_refusal_responses_kept"`
	CompliantFilterRate          float64           `json:"compliant_filter_rate"`
	RefusalFilterRate            float64           `json:"refusal_filter_rate"`
	RefusalKeptByInstruction     []InstructionKept `json:"refusal_kept_by_instruction"`
	Seed                         int64             `json:"seed"`
	VectorShape                  []int             `json:"vector_shape"`

	refusalkit.Provenance                    // model_path, model_alias, model_hash, tokenizer, backend, dtype, versions, run_digest, run_settings
	ModelSource           string             `json:"model_source"`
	ModelConfig           models.Config      `json:"model_config"`
	RefusalInstruction    string             `json:"refusal_instruction"`
	RefusalInstructions   []string           `json:"refusal_instructions"`
	ParseSpecialTokens    bool               `json:"parse_special_tokens"`
	Dataset               string             `json:"dataset"`
	Split                 string             `json:"split"`
	Queries               []string           `json:"queries"`
	MaxNewTokens          int                `json:"max_new_tokens"`
	BatchSize             int                `json:"generation_batch_size"`
	Sampling              map[string]float64 `json:"sampling"`
	Judge                 map[string]any     `json:"judge"`
	Activations           string             `json:"activations"`
	TimingsSeconds        map[string]float64 `json:"timings_seconds"`
	Complete              bool               `json:"complete"`
	// ResponsesFrom names the run the responses were read from when they
	// were not generated here (refusalkit rejudge); its activations were then
	// recomputed by a forward pass.
	ResponsesFrom string `json:"responses_from,omitempty"`
	// What decides its reuse, the provenance's run_digest and run_settings,
	// are written here since the provenance record took them over.
}

// InstructionKept is one refusal instruction's share of the refusal-mode
// responses: the completions that used it (c mod k = index), and how many
// of them the judge kept as refusals.
type InstructionKept struct {
	Index      int     `json:"index"`
	Generated  int     `json:"n_generated"`
	Kept       int     `json:"n_kept"`
	FilterRate float64 `json:"filter_rate"`
}

// keptByInstruction counts generated and kept refusal-mode responses per
// refusal instruction (Response.InstructionIndex).
func keptByInstruction(k int, generated, kept []refusalkit.Response) []InstructionKept {
	out := make([]InstructionKept, k)
	for i := range out {
		out[i].Index = i
	}
	for _, r := range generated {
		if i := r.InstructionIndex(); i < k {
			out[i].Generated++
		}
	}
	for _, r := range kept {
		if i := r.InstructionIndex(); i < k {
			out[i].Kept++
		}
	}
	for i := range out {
		out[i].FilterRate = rate(out[i].Kept, out[i].Generated)
	}
	return out
}

// rate is kept/generated, 0 when nothing was generated.
func rate(kept, generated int) float64 {
	if generated == 0 {
		return 0
	}
	return float64(kept) / float64(generated)
}

// MetadataFor builds metadata.json's content for an extraction.
func MetadataFor(m *models.Model, x *refusalkit.Extraction) Metadata {
	return metadataOf(Metadata{Provenance: refusalkit.ProvenanceOf(m, nil), ModelSource: m.Source, ModelConfig: m.Config}, x)
}

// metadataOf is metadata.json for x, with the model's entries (provenance,
// source, config) taken from model: a merge of shards has their record of
// the model, not the model.
func metadataOf(model Metadata, x *refusalkit.Extraction) Metadata {
	c := x.Config.WithDefaults()
	s := *c.Sampling
	md := Metadata{
		NQueries: len(x.Queries), NCompletionsPerQuery: c.NCompletions,
		NCompliantResponsesGenerated: len(x.Compliant), NRefusalResponsesGenerated: len(x.Refusal),
		NCompliantResponsesKept: len(x.FilteredCompliant), NRefusalResponsesKept: len(x.FilteredRefusal),
		CompliantFilterRate: rate(len(x.FilteredCompliant), len(x.Compliant)),
		RefusalFilterRate:   rate(len(x.FilteredRefusal), len(x.Refusal)),
		Seed:                *c.Seed,
		Provenance:          model.Provenance, ModelSource: model.ModelSource, ModelConfig: model.ModelConfig,
		RefusalInstruction: c.RefusalInstructions[0], RefusalInstructions: c.RefusalInstructions,
		RefusalKeptByInstruction: keptByInstruction(len(c.RefusalInstructions), x.Refusal, x.FilteredRefusal),
		ParseSpecialTokens:       c.ParseSpecialTokens,
		Dataset:                  refusalkit.DatasetName(c.Dataset), Split: refusalkit.SplitDescription,
		Queries: x.Queries, MaxNewTokens: c.MaxNewTokens, BatchSize: c.BatchSize,
		Sampling: map[string]float64{"temperature": s.Temperature, "top_p": s.TopP, "top_k": float64(s.TopK)},
		Judge:    judgeMetadata(c.Judge),
		Activations: "mean over each kept response's own generated tokens (no padding, no end-of-turn token) of the residual stream at every layer, " +
			"accumulated in float64; layer 0 = embedding output, layer l = stream entering block l, layer n_layers = final hidden state after the final norm",
		TimingsSeconds: x.Timings,
	}
	if x.ResponsesFrom != "" {
		md.ResponsesFrom = x.ResponsesFrom
		md.Activations += "; recomputed by a forward pass over the prompt and the saved token ids (the responses were read from another run)"
	}
	if x.Vector != nil {
		md.VectorShape = []int{len(x.Vector.Data), x.Vector.DModel}
		md.Complete = true
	}
	return md
}

// judgeMetadata is the judge's entry of metadata.json; a name no judge
// answers to (an Extraction built by hand) is recorded as given.
func judgeMetadata(name string) map[string]any {
	j, err := judge.ByName(name)
	if err != nil {
		return map[string]any{"name": name, "error": err.Error()}
	}
	return j.Metadata()
}

// config returns the extraction settings metadata.json records.
func (md *Metadata) config() refusalkit.ExtractConfig {
	dataset := md.Dataset
	if dataset == refusalkit.DatasetName("") {
		dataset = ""
	}
	seed := md.Seed
	instrs := md.RefusalInstructions
	if len(instrs) == 0 { // written before runs could have several
		instrs = []string{md.RefusalInstruction}
	}
	judge, _ := md.Judge["name"].(string) // runs made before judges could be chosen name none: theirs was the default
	return refusalkit.ExtractConfig{NSamples: md.NQueries, Dataset: dataset, Judge: judge, GenerateConfig: refusalkit.GenerateConfig{
		NCompletions: md.NCompletionsPerQuery, MaxNewTokens: md.MaxNewTokens, BatchSize: md.BatchSize, Seed: &seed,
		Sampling:            &models.Sampling{Temperature: md.Sampling["temperature"], TopP: md.Sampling["top_p"], TopK: int(md.Sampling["top_k"])},
		RefusalInstructions: instrs, ParseSpecialTokens: md.ParseSpecialTokens,
	}}
}

// evalSummaryFile is eval_summary.json: the summary, whose provenance
// holds what decides its reuse (run_digest, run_settings).
type evalSummaryFile struct {
	refusalkit.EvalSummary
}
