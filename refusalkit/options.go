package refusalkit

import "github.com/refusalkit/refusalkit/models"

// Option adjusts how a step runs, never what it computes: progress reports,
// a checkpoint to resume from, the function that generates each batch.
type Option func(*hooks)

type hooks struct {
	progress   func(stage string, done, total int)
	checkpoint Checkpoint
	generate   Generator
	shard      *Shard // GenerateResponses generates this shard's batches only (set by Extract)
}

// Generator generates one batch: by contract, what m.GenerateIDs(prompts,
// opts) returns, as GenerateResponses asks it, with one exception: a
// generator that does not capture (benchutil.Naive) returns Means nil, and
// Extract then averages those responses' activations in a pass of their own.
// Means for some rows only is refused.
type Generator func(prompts [][]int32, opts models.GenerateOptions) (*models.Generation, error)

// WithProgress reports each stage as it advances, as (stage, done, total).
func WithProgress(f func(stage string, done, total int)) Option {
	return func(h *hooks) { h.progress = f }
}

// WithCheckpoint saves every finished generation batch to c and skips the
// batches c already holds, so an interrupted extraction resumes where it stopped.
func WithCheckpoint(c Checkpoint) Option { return func(h *hooks) { h.checkpoint = c } }

// WithGenerator has GenerateResponses generate each batch with g instead of
// the model's GenerateIDs: to time or trace the batches (the benchmarks
// count tokens and seconds this way, and run the model's naive mode).
func WithGenerator(g Generator) Option { return func(h *hooks) { h.generate = g } }

func collect(opts []Option) hooks {
	var h hooks
	for _, o := range opts {
		o(&h)
	}
	return h
}

// report returns a (done, total) callback for one stage, or nil.
func (h hooks) report(stage string) func(done, total int) {
	if h.progress == nil {
		return nil
	}
	return func(done, total int) { h.progress(stage, done, total) }
}

// orDefault returns *p, or def when p is nil: the zero value of a config's
// pointer field means the spec's default.
func orDefault[T any](p *T, def T) *T {
	if p != nil {
		return p
	}
	return &def
}

// positiveOr returns n, or def when n is 0.
func positiveOr(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}
