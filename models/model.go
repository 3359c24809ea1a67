package models

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/distributed"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/refusalkit/refusalkit/models/tokenizer"
)

// Tokenizer is what a Model needs from its tokenizer (models/tokenizer implements it).
type Tokenizer interface {
	// Encode tokenizes text as it is: special tokens written in the text
	// (e.g. "<|im_start|>") map to their ids, and nothing is added. It is
	// for text the program writes; prompts holding user text go through
	// EncodeTemplated.
	Encode(text string) ([]int32, error)
	// EncodeTemplated tokenizes a rendered prompt like Encode, except that
	// inside the user spans special-token spellings are plain text: the
	// template's own markers are the only control tokens. With no special
	// token inside a user span the ids are exactly Encode's.
	EncodeTemplated(text string, user []Span) ([]int32, error)
	// Decode turns ids back into text, skipping special tokens.
	Decode(ids []int32) string
	// TokenID looks up a token by its exact string.
	TokenID(token string) (int32, bool)
}

// Span is a byte range [Start, End) of a text, e.g. where the user's message
// lies in a rendered prompt.
type Span = tokenizer.Span

// Model is a loaded chat model: config, weights on a backend, tokenizer and
// chat template. It is safe for use by one goroutine at a time.
type Model struct {
	Config Config
	// Path is the model as Load was given it (a bundled name, a file, a
	// folder or a hub id); Source is what it resolved to.
	Path      string
	Source    string
	Backend   compute.Backend
	Tokenizer Tokenizer
	// Template is the checkpoint's chat template; nil for a base model,
	// which runs on raw text only (EncodeRaw).
	Template *ChatTemplate
	// Warnings lists checkpoint keys refusalkit does not know and ignored;
	// the commands print them.
	Warnings []string
	// StopTokens end a reply: the EOS token and the template's end-of-turn token.
	StopTokens []int32

	weights    *Params[*tensors.Tensor] // on device 0 (with several devices, device 0's shards)
	weightList []*tensors.Tensor        // visit order: the first inputs of every graph
	layout     *layout                  // with several devices (LoadOptions.Devices); nil for one
	shards     [][]*tensors.Tensor      // with several devices: [device] weightList

	mu       sync.Mutex
	programs map[string]*graph.Exec // compiled programs by name: steps by interventions, KV-cache helpers, sweep suffixes

	statsState // the work done, for Stats
}

// newModel uploads the weights (if the loader has not) and prepares the
// stop tokens. pl placed the weights w holds device 0's part of.
func newModel(cfg Config, source string, pl *placer, w *Params[*tensors.Tensor], tok Tokenizer, tmpl *ChatTemplate) (*Model, error) {
	backend := pl.backend
	m := &Model{Config: cfg, Path: source, Source: source, Backend: backend, Tokenizer: tok, Template: tmpl,
		weights: w, layout: pl.layout, shards: pl.shards, programs: map[string]*graph.Exec{}}
	m.weightList = w.flat(&m.Config)
	for _, t := range m.weightList {
		if m.shards != nil {
			break // placed, one shard per device
		}
		// The loaders upload each weight as they read it; NewTiny's arrive on the host.
		// ToDevice also drops the host copy.
		if err := t.ToDevice(backend, 0); err != nil {
			return nil, fmt.Errorf("move weights to the %s backend: %w", BackendName(backend), err)
		}
	}
	releaseMemory()
	if cfg.EOS >= 0 {
		m.StopTokens = append(m.StopTokens, cfg.EOS)
	}
	// Chat models end a turn with a template token that is not always the
	// checkpoint's EOS (SmolLM2 and Qwen use <|im_end|>, Llama 3 <|eot_id|>).
	for _, s := range []string{"<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "</s>", "<|endoftext|>"} {
		if id, ok := tok.TokenID(s); ok && !containsID(m.StopTokens, id) && tmpl != nil && strings.Contains(tmpl.Source, s) {
			m.StopTokens = append(m.StopTokens, id)
		}
	}
	return m, nil
}

func containsID(ids []int32, id int32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// exec returns the compiled step program for a set of interventions.
func (m *Model) exec(iv Interventions) (*graph.Exec, error) {
	return m.program(fmt.Sprintf("step %+v", iv), m.stepGraph(iv), programIO{weights: true,
		in: stepInputNames(&m.Config, iv), out: stepOutputNames(&m.Config, iv)})
}

// programIO names a program's inputs (after the weights, when it takes
// them) and outputs: with several devices their names decide their sharding.
type programIO struct {
	weights bool
	in, out []string
}

// program returns the named compiled program, building it on first use. An
// Exec compiles once per input shape; shapes are bucketed (batch, prompt
// length, cache length), so a run compiles a handful: allow plenty.
func (m *Model) program(name string, fn func(g *graph.Graph, in []*graph.Node) []*graph.Node, io programIO) (*graph.Exec, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.programs[name]; ok {
		return e, nil
	}
	e, err := graph.NewExec(m.Backend, fn)
	if err != nil {
		return nil, err
	}
	if l := m.layout; l != nil {
		var in []*distributed.ShardingSpec
		if io.weights {
			in = append(in, l.weights...)
		}
		in = append(in, l.specs(io.in)...)
		e.AutoSharding(l.mesh).WithInputShardingSpecs(in...).WithOutputShardingSpecs(l.specs(io.out)...)
	}
	e.SetMaxCache(256)
	m.programs[name] = e
	return e, nil
}

// Alias is the model's own name, used for output folders.
func (m *Model) Alias() string { return m.Config.Name }

// NumParameters counts the weights (tied embeddings counted once).
func (m *Model) NumParameters() int64 {
	var n int64
	(&Params[*tensors.Tensor]{}).visit(&m.Config, func(s weightSpec, _ **tensors.Tensor) {
		size := int64(1)
		for _, d := range s.shape {
			size *= int64(d)
		}
		n += size
	})
	return n
}

// Close releases the weights on the backend.
func (m *Model) Close() {
	for _, t := range m.weightList {
		t.FinalizeAll()
	}
	for _, ws := range m.shards {
		for _, t := range ws {
			t.FinalizeAll()
		}
	}
	m.weightList, m.shards = nil, nil
}

// fileExists reports whether path is an existing regular file.
func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// dirName is the last element of a folder path, used as a model name.
func dirName(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return filepath.Base(dir)
	}
	return filepath.Base(abs)
}

// AutoBatchSize picks a generation batch size from the memory available:
// each row holds a KV cache of 2 × n_layers × n_kv_heads × slots × head_dim
// values of the model's dtype (plus its logits and step activations), and the batch uses
// at most a quarter of MemAvailable, between 1 and 64 rows.
func (m *Model) AutoBatchSize(promptTokens, maxNewTokens int) int {
	c := &m.Config
	slots := bucket(bucket(promptTokens, promptBucket)+maxNewTokens+1, cacheBucket)
	perRow := m.DType().Size()*2*c.NumLayers*c.NumKVHeads*slots*c.HeadDim + // KV cache
		4*(2*c.VocabSize+ // logits, device and host
			4*(c.NumLayers+1)*c.DModel+ // captured sums
			8*bucket(promptTokens, promptBucket)*max(c.FFNDim, c.DModel)) // prefill activations, roughly
	avail := memAvailable()
	if avail <= 0 {
		return 8
	}
	return max(1, min(64, int(avail/4/int64(perRow))))
}

// memAvailable reads MemAvailable from /proc/meminfo in bytes (0 if unknown).
func memAvailable() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb * 1024
		}
	}
	return 0
}

// String names the model, its backend and dtype, and its shape.
func (m *Model) String() string {
	return fmt.Sprintf("%s on %s (%s): %d layers, d_model %d", m.Alias(), BackendName(m.Backend), DTypeName(m.DType()),
		m.Config.NumLayers, m.Config.DModel)
}
