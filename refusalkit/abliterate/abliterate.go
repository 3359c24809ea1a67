// Package abliterate writes a model's checkpoint with one direction
// projected out of every weight that writes into the residual stream
// ("abliteration"): the token embeddings and each block's attention output
// and MLP down projections, biases included, become W − r̂ r̂ᵀ W. The
// written model runs in any runtime, with no hook, as the source model runs
// in refusalkit with the direction ablated at run time (models'
// Interventions.Ablate, refusalkit.Ablate): every piece the stream is made
// of lies orthogonal to r̂, so the stream does too.
//
// The source's format is kept: a Hugging Face folder is written as one
// (config, tokenizer and template files copied, each safetensors shard
// rewritten in its own dtype), a GGUF as a GGUF in llama.cpp's layout
// (every key and untouched tensor copied byte for byte; the rewritten
// tensors in float32, since a quantised block cannot hold W − r̂ r̂ᵀ W).
package abliterate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/refusalkit/refusalkit/internal/buildinfo"
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit/tensorfile"
)

// Formats Write produces.
const (
	FormatHF   = "hf"
	FormatGGUF = "gguf"
)

// RecordFile is written into the output folder beside the model: what was
// done, to which source, with which direction.
const RecordFile = "abliteration.json"

// Method says what Write does, in the record and the checkpoint's metadata.
const Method = "orthogonalised weights: W ← W − r̂ r̂ᵀ W for the token embeddings and every block's attention output and MLP down projection (and their biases), r̂ the unit direction along d_model; tied embeddings untied, the LM head keeping the source's embeddings"

// Options are Write's choices.
type Options struct {
	// Direction is the direction removed, d_model values (any length: it is
	// normalised here).
	Direction []float32
	// Format is FormatHF or FormatGGUF; "" is the source's. Writing the other
	// format than the source's is refused: a converter (llama.cpp's
	// convert_hf_to_gguf.py) does that from the written folder.
	Format string
	// Overwrite replaces an existing output folder; without it one is refused.
	Overwrite bool
	// Provenance is recorded beside what Write records itself (the source
	// and its hashes, the method): the vector file, its hash, the layer.
	Provenance map[string]string
	// Progress, when set, is told the bytes written of the total.
	Progress func(stage string, done, total int)
}

// Record is abliteration.json, and (as JSON) the checkpoint's own
// metadata entry "refusalkit.abliteration".
type Record struct {
	Method       string            `json:"method"`
	Format       string            `json:"format"`
	Source       string            `json:"source"`
	SourceAlias  string            `json:"source_alias"`
	SourceSHA256 map[string]string `json:"source_sha256"` // per file of the source
	Model        string            `json:"model"`         // the written model's file or folder, relative to the output folder
	// Tensors are the rewritten tensors, with the largest component along r̂
	// of their vectors before and after (after: as stored, so rounding to a
	// 16-bit dtype shows).
	Tensors []TensorChange `json:"tensors"`
	// Untied says what happened to tied embeddings: the LM head was written
	// as the source's embeddings, so the logits of the stream are unchanged
	// (the final norm's weight would otherwise turn an orthogonalised
	// embedding back into a component along r̂).
	Untied       string            `json:"untied,omitempty"`
	MaxLeftover  float64           `json:"max_leftover_ratio"` // the worst after / before over the tensors
	Provenance   map[string]string `json:"provenance"`
	Versions     map[string]string `json:"versions"`
	NotCopied    []string          `json:"not_copied,omitempty"` // files of the source folder left out (other weight formats)
	OutputSHA256 map[string]string `json:"output_sha256"`
	// Check, when asked for, compares the written model with the source (Compare).
	Check *Check `json:"check,omitempty"`
}

// SaveRecord writes rec as dir's abliteration.json (again, once a Check is added).
func SaveRecord(dir string, rec *Record) error {
	return tensorfile.WriteJSONAtomic(filepath.Join(dir, RecordFile), rec)
}

// TensorChange is one rewritten tensor.
type TensorChange struct {
	Name   string  `json:"name"`
	DType  string  `json:"dtype"` // as written
	Before float64 `json:"max_component_before"`
	After  float64 `json:"max_component_after"`
}

// ExistsError refuses an output folder that exists, without Overwrite.
type ExistsError struct{ Dir string }

func (e *ExistsError) Error() string {
	return fmt.Sprintf("output folder %s exists: give --overwrite to replace it, or another --out", e.Dir)
}

// Write writes the source model (a path models.Resolve accepts) with
// opts.Direction projected out into the folder out, and returns its
// record: Prepare, then Plan.Write.
func Write(source, out string, opts Options) (*Record, error) {
	p, err := Prepare(source, out, opts)
	if err != nil {
		return nil, err
	}
	return p.Write()
}

// Plan is an abliteration checked and ready to write.
type Plan struct {
	Source, Out string
	Checkpoint  *models.Checkpoint
	Format      string // as written: the source's
	Bytes       int64  // what the output takes on disk
	opts        Options
	r           []float64
	job         writer
}

// Prepare checks everything that can be refused before a byte is written,
// reading only the source's config and tensor tables: a family with
// post-norms (no exact abliteration exists), a direction of the wrong
// length, a format other than the source's, an existing out without
// Overwrite, too little disk space.
func Prepare(source, out string, opts Options) (*Plan, error) {
	ck, err := models.ReadCheckpoint(source)
	if err != nil {
		return nil, err
	}
	writers, err := ck.ResidualWriters()
	if err != nil {
		return nil, err
	}
	if len(opts.Direction) != ck.Config.DModel {
		return nil, fmt.Errorf("the direction has %d values but %s has d_model %d: give a direction made with this model", len(opts.Direction), ck.Alias, ck.Config.DModel)
	}
	r, err := unit(opts.Direction)
	if err != nil {
		return nil, err
	}
	srcFormat := FormatHF
	if ck.GGUF {
		srcFormat = FormatGGUF
	}
	switch opts.Format {
	case "", srcFormat:
	case FormatHF, FormatGGUF:
		if ck.GGUF {
			return nil, fmt.Errorf("--format hf needs a Hugging Face folder as the source; %s is a GGUF: write --format gguf", ck.Path)
		}
		return nil, fmt.Errorf("--format gguf needs a GGUF source; %s is a Hugging Face folder: write it as one, then convert the written folder with llama.cpp's convert_hf_to_gguf.py", ck.Path)
	default:
		return nil, fmt.Errorf("--format %q: use hf or gguf", opts.Format)
	}
	if f := ck.Config.Family(); ck.GGUF && ck.Config.TiedEmbeddings && f.GGUFTiedHead {
		return nil, fmt.Errorf("llama.cpp reads a %s GGUF's LM head from token_embd.weight, so the untied head an abliterated model needs cannot be written in one: abliterate the Hugging Face folder instead", f.GGUFArchs[0])
	}
	if st, err := os.Stat(out); err == nil {
		if !st.IsDir() {
			return nil, fmt.Errorf("output %s is a file: give a folder with --out", out)
		}
		if !opts.Overwrite {
			return nil, &ExistsError{Dir: out}
		}
	}
	p := &Plan{Source: source, Out: out, Checkpoint: ck, Format: srcFormat, opts: opts, r: r}
	if ck.GGUF {
		p.job, err = planGGUF(ck, writers, filepath.Base(filepath.Clean(out))+".gguf")
	} else {
		p.job, err = planHF(ck, writers)
	}
	if err != nil {
		return nil, err
	}
	p.Bytes = p.job.size()
	if err := checkSpace(p.parent(), p.Bytes); err != nil {
		return nil, err
	}
	return p, nil
}

// parent is the folder out is written in: the nearest one that exists.
func (p *Plan) parent() string {
	dir := filepath.Dir(filepath.Clean(p.Out))
	for {
		if _, err := os.Stat(dir); err == nil || dir == filepath.Dir(dir) {
			return dir
		}
		dir = filepath.Dir(dir)
	}
}

// Write writes the plan's folder under a temporary name beside Out and
// renames it when complete (moving a previous Out aside, then removing it).
func (p *Plan) Write() (*Record, error) {
	parent := filepath.Dir(filepath.Clean(p.Out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s (%v): choose a writable --out", parent, err)
	}
	rec := &Record{Method: Method, Format: p.Format, Source: p.Source, SourceAlias: p.Checkpoint.Alias,
		Provenance: p.opts.Provenance, Versions: buildinfo.Versions()}
	var err error
	if rec.SourceSHA256, err = hashSource(p.Checkpoint.Path); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(filepath.Clean(p.Out))+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("cannot write into %s (%v): choose a writable --out", parent, err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	// MkdirTemp's 0700 would keep the model from its other users.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	if err := p.job.write(tmp, p.r, rec, p.opts.Progress); err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return nil, fmt.Errorf("%w: free some disk space or choose another --out", err)
		}
		return nil, err
	}
	for _, t := range rec.Tensors {
		if t.Before > 0 {
			rec.MaxLeftover = max(rec.MaxLeftover, t.After/t.Before)
		}
	}
	if rec.OutputSHA256, err = hashSource(filepath.Join(tmp, rec.Model)); err != nil {
		return nil, err
	}
	if err := SaveRecord(tmp, rec); err != nil {
		return nil, err
	}
	return rec, replaceDir(tmp, p.Out)
}

// writer is one format's rewrite of a source checkpoint.
type writer interface {
	size() int64 // bytes the output takes
	// write fills dir, appending to rec.Tensors and setting rec.Model,
	// rec.Untied and rec.NotCopied.
	write(dir string, r []float64, rec *Record, progress func(string, int, int)) error
}

// metadataValue is the record as the checkpoint's own metadata: the same
// fields, without the hashes of the output (which include this value).
func metadataValue(rec *Record) string {
	c := *rec
	c.Tensors, c.OutputSHA256 = nil, nil
	b, _ := json.Marshal(c)
	return string(b)
}

// replaceDir renames the complete folder tmp to out, moving a previous out
// aside first and removing it only after.
func replaceDir(tmp, out string) error {
	if _, err := os.Stat(out); err == nil {
		old := tmp + ".old"
		if err := os.Rename(out, old); err != nil {
			return fmt.Errorf("cannot replace %s (%v)", out, err)
		}
		if err := os.Rename(tmp, out); err != nil {
			_ = os.Rename(old, out)
			return fmt.Errorf("cannot replace %s (%v)", out, err)
		}
		return os.RemoveAll(old)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("cannot write %s (%v)", out, err)
	}
	return nil
}

// checkSpace refuses a write that the file system holding dir has no room for.
func checkSpace(dir string, need int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil // cannot tell: the write itself reports a full disk
	}
	if free := int64(st.Bavail) * int64(st.Bsize); free < need+need/50 {
		return fmt.Errorf("the abliterated model needs %.2f GB and %s has %.2f GB free: free some space or choose another --out", float64(need)/1e9, dir, float64(free)/1e9)
	}
	return nil
}

// hashSource is the sha256 of a file, or of each regular file of a folder.
func hashSource(path string) (map[string]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return hashFiles(path)
	}
	h, err := FileSHA256(path)
	if err != nil {
		return nil, err
	}
	return map[string]string{filepath.Base(path): h}, nil
}

func hashFiles(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") || e.Name() == RecordFile {
			continue
		}
		if out[e.Name()], err = FileSHA256(filepath.Join(dir, e.Name())); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// FileSHA256 is the sha256 of the file at path, in hex.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
