// Package refusalkit holds the method: extracting a refusal vector from a
// chat model and evaluating it by activation addition (see the spec,
// "Refusal Vector Extraction from ALPACA Dataset").
//
// Every step takes values and returns values; none reads or writes a file
// (package runs saves results in a run folder and reads them back). The
// extraction, chained by Extract:
//
//	SampleQueries → GenerateResponses (both modes) → FilterResponses → MeanActivations → ComputeRefusalVector
//
// and the evaluation, chained by Evaluate:
//
//	EvalQueries → DeriveRefusalTokens → ScoreLayers → Sweep
//
// Beside them, directional ablation (Ablate: the refusal rate on
// JailbreakBench and on the induced refusal, without and with a row's unit
// direction removed everywhere) and the reference method's direction
// (ReferenceDirection: harmful minus harmless means at the last prompt
// token), compared with the vector row by row (LayerCosines).
//
// The judge that keeps responses and counts refusals is a choice (Judge,
// package judge; ExtractConfig.Judge, SweepConfig.Judge): the spec's
// judge.Substring by default, or the stricter judge.Leading, measured against
// hand labels by judge.Agreements; Rejudge re-filters an extraction's
// responses with another judge without generating anything.
//
// A config's zero value is the spec's (ExtractConfig{}, EvalConfig{},
// SweepConfig{}, ScoreConfig{}): each field left zero or nil takes the
// default noted beside it, and WithDefaults returns the settings a run
// records. Options (WithProgress, WithCheckpoint, WithGenerator) change how
// a step runs, never what it computes.
//
// One vocabulary throughout: layer l is the residual stream entering block
// l, numbered as transformers' hidden_states (layer 0 is the embedding
// output, layer n_layers the final hidden state after the final norm); a
// RefusalVector has one row per layer, and steering at layer l adds c·v[l]
// to the stream entering block l.
package refusalkit
