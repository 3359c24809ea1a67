package models

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/go-huggingface/models/gguf"
)

// Checkpoint is what a checkpoint says of itself, read without its
// weights: where it is, its format and its config. Code that rewrites a
// checkpoint's tensors (abliteration) reads it to know which tensors to
// touch, under the names the file uses.
type Checkpoint struct {
	Path   string // the resolved file (GGUF) or folder (Hugging Face)
	GGUF   bool
	Alias  string
	Config Config
}

// ReadCheckpoint resolves modelPath as Load does and reads its config,
// refusing what Load would refuse of it (an unknown family or key).
func ReadCheckpoint(modelPath string) (*Checkpoint, error) {
	src, err := Resolve(modelPath)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("model %s is not a file or folder on disk (%v): give a .gguf file or a Hugging Face folder", modelPath, err)
	}
	if st.IsDir() {
		cfg, _, err := configFromHF(filepath.Join(src, "config.json"), dirName(src))
		if err != nil {
			return nil, err
		}
		return &Checkpoint{Path: src, Alias: cfg.Name, Config: cfg}, nil
	}
	f, err := gguf.Open(src)
	if err != nil {
		return nil, fmt.Errorf("corrupt or truncated GGUF %s (%v): re-download the file", src, err)
	}
	cfg, _, err := configFromGGUF(f, aliasFromFile(src))
	if err != nil {
		return nil, err
	}
	return &Checkpoint{Path: src, GGUF: true, Alias: cfg.Name, Config: cfg}, nil
}

// ResidualWriter is a checkpoint tensor whose output is added to the
// residual stream: removing a direction from everything the model writes
// into the stream is projecting it out of these tensors along their d_model
// axis.
type ResidualWriter struct {
	Name string // as the checkpoint names it
	// Axis is the d_model axis, outermost first: 1 for the token embeddings
	// [vocab, d_model], 0 for an output projection [d_model, in] and its
	// bias [d_model]. Hugging Face and GGUF files agree (GGUF lists
	// dimensions innermost first; the bytes are laid out alike).
	Axis int
}

// ResidualWriters lists the tensors that write into the residual stream,
// in the order the model reads them: the token embeddings, then per block
// the attention output projection and the MLP down projection, each with
// its bias where the config has one. A family whose blocks normalise their
// outputs before adding them to the stream (Family.PostNorms: Gemma 2/3,
// OLMo 2) is refused: the norm rescales each position by its own RMS and
// multiplies by its weight, so a direction projected out of the
// projection comes back after it.
func (c *Checkpoint) ResidualWriters() ([]ResidualWriter, error) {
	cfg := &c.Config
	if cfg.family.PostNorms {
		return nil, fmt.Errorf("model family %s normalises each block's output before the residual add (post-norms): projecting a direction out of the weights does not remove it from the stream, so no exact abliterated checkpoint exists; use `refusalkit ablate`, which removes it at run time", cfg.family.ModelTypes[0])
	}
	var p Params[byte] // a sized T: pointers to its fields tell them apart
	var out []ResidualWriter
	p.visit(cfg, func(s weightSpec, v *byte) {
		name := s.hf
		if c.GGUF {
			name = s.gguf
		}
		switch {
		case v == &p.Embed:
			out = append(out, ResidualWriter{Name: name, Axis: 1})
		default:
			for i := range p.Blocks {
				b := &p.Blocks[i]
				if v == &b.O || v == &b.OBias || v == &b.Down || v == &b.DownBias {
					out = append(out, ResidualWriter{Name: name, Axis: 0})
				}
			}
		}
	})
	return out, nil
}

// EmbeddingName and LMHeadName are the checkpoint's names of the token
// embeddings and of the LM head (present in the file only when untied).
func (c *Checkpoint) EmbeddingName() string {
	if c.GGUF {
		return "token_embd.weight"
	}
	return "model.embed_tokens.weight"
}

func (c *Checkpoint) LMHeadName() string {
	if c.GGUF {
		return "output.weight"
	}
	return "lm_head.weight"
}
