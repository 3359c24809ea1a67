package refusalkit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/refusalkit/refusalkit/internal/buildinfo"
	"github.com/refusalkit/refusalkit/models"
)

// Provenance is what every result file records of where its numbers came
// from, beside its stage's own fields: the model as loaded and the
// identity of its files, its tokenizer, the backend and dtype it ran in,
// the code's versions, and, once a run folder saves the result, every
// setting that determined it (the seeds, the configuration, and the
// fingerprints of its inputs: the dataset's content, the sampled queries,
// the vector and the kept responses it was made from) with their digest.
//
// One type, filled by one function (ProvenanceOf), embedded in
// metadata.json, eval_summary.json and ablation_summary.json under the
// field names those files always had, written into the vector file's
// metadata (Metadata), and read back from any of them by
// runs.ReadProvenance. Fields added since (model_hash, tokenizer) are
// omitted when empty, so files written before them read the same, with
// those fields empty.
type Provenance struct {
	ModelPath  string `json:"model_path"`
	ModelAlias string `json:"model_alias"`
	// ModelHash identifies the model's files (ModelFiles); "" in files
	// written before it was recorded.
	ModelHash string `json:"model_hash,omitempty"`
	// ModelContent identifies the model's files without their modification
	// times (ModelContent): the same for two copies of one model, so that
	// shards from two machines, or a vector and the model it is applied to,
	// can be matched. "" in files written before it was recorded.
	ModelContent string `json:"model_content,omitempty"`
	// Tokenizer fingerprints the tokenizer by what it does (TokenizerFingerprint).
	Tokenizer string            `json:"tokenizer,omitempty"`
	Backend   string            `json:"backend"` // as --backend names it: xla:cpu, xla:cuda, go
	DType     string            `json:"dtype"`   // of weights, activations and KV cache (models.LoadOptions)
	Versions  map[string]string `json:"versions"`

	// RunDigest identifies the settings the result was made with
	// (RunSettings.Digest); a run folder reuses a saved result, or resumes a
	// checkpoint, only for the same digest. RunSettings lists them, so a
	// difference can be named. Empty for a result no run folder has saved.
	RunDigest   string   `json:"run_digest,omitempty"`
	RunSettings Settings `json:"run_settings,omitempty"`
}

// ProvenanceOf is the provenance of results m computes with settings (nil
// for a step's in-memory result; a run folder passes what determined it,
// runs.ExtractSettings or runs.EvalSettings). The model's hash is the
// settings' model_files entry when they have one, else ModelFiles.
func ProvenanceOf(m *models.Model, settings Settings) Provenance {
	p := Provenance{ModelPath: m.Path, ModelAlias: m.Alias(), Tokenizer: TokenizerFingerprint(m),
		Backend: models.BackendName(m.Backend), DType: models.DTypeName(m.DType()), Versions: buildinfo.Versions()}
	if p.ModelHash = settings.Value("model_files"); p.ModelHash == "" {
		p.ModelHash, _ = ModelFiles(m.Source)
	}
	p.ModelContent, _ = ModelContent(m.Source)
	if settings != nil {
		p.RunDigest, p.RunSettings = settings.Digest(), settings
	}
	return p
}

// metadataKeys are the vector-file metadata keys Metadata writes, in the
// order of the fields. The model path is left out: it differs between a
// notebook's and a command's spelling of the same model (metadata.json
// records it); the alias is the file's "model" key.
var metadataKeys = []string{"model_hash", "model_content", "tokenizer", "backend", "dtype", "versions", "run_digest", "run_settings"}

// Metadata is p as a vector file's string metadata: each field under its
// JSON name, maps and lists as JSON, empty fields left out (backend and
// dtype always written, as they always were).
func (p Provenance) Metadata() map[string]string {
	meta := map[string]string{"model_hash": p.ModelHash, "model_content": p.ModelContent, "tokenizer": p.Tokenizer, "backend": p.Backend, "dtype": p.DType, "run_digest": p.RunDigest}
	if len(p.Versions) > 0 {
		b, _ := json.Marshal(p.Versions)
		meta["versions"] = string(b)
	}
	if len(p.RunSettings) > 0 {
		b, _ := json.Marshal(p.RunSettings)
		meta["run_settings"] = string(b)
	}
	for k, v := range meta {
		if v == "" && k != "backend" && k != "dtype" {
			delete(meta, k)
		}
	}
	return meta
}

// ProvenanceFromMetadata reads back what Metadata wrote, and the alias
// from the "model" key; keys a file lacks are left empty.
func ProvenanceFromMetadata(meta map[string]string) (Provenance, error) {
	p := Provenance{ModelAlias: meta["model"], ModelHash: meta["model_hash"], ModelContent: meta["model_content"], Tokenizer: meta["tokenizer"],
		Backend: meta["backend"], DType: meta["dtype"], RunDigest: meta["run_digest"]}
	if s, ok := meta["versions"]; ok {
		if err := json.Unmarshal([]byte(s), &p.Versions); err != nil {
			return p, fmt.Errorf("versions %q is not a JSON object: %v", s, err)
		}
	}
	if s, ok := meta["run_settings"]; ok {
		if err := json.Unmarshal([]byte(s), &p.RunSettings); err != nil {
			return p, fmt.Errorf("run_settings %q is not a JSON list of settings: %v", s, err)
		}
	}
	return p, nil
}

// IsProvenanceKey reports whether a vector file's metadata key is one of
// Metadata's.
func IsProvenanceKey(key string) bool {
	for _, k := range metadataKeys {
		if k == key {
			return true
		}
	}
	return false
}

// tokenizerProbe exercises what differs between tokenizers: words, digits,
// punctuation, accents, CJK, emoji, whitespace runs and a special-token spelling.
const tokenizerProbe = "Hello, world! It's 2024: naïve café, 東京, 🙂\n\t  <|im_start|> </s> [INST]"

// TokenizerFingerprint identifies m's tokenizer by what it does, without
// reading its files (a GGUF holds it inside): the sha256 of the ids of a
// fixed probe text and of their decoding, with the vocabulary size.
func TokenizerFingerprint(m *models.Model) string {
	if m.Tokenizer == nil {
		return ""
	}
	ids, err := m.Tokenizer.Encode(tokenizerProbe)
	if err != nil {
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "%v\n%s", ids, m.Tokenizer.Decode(ids))
	return fmt.Sprintf("vocabulary %d, sha256 %s of a probe text's ids and decoding", m.Config.VocabSize, hex.EncodeToString(h.Sum(nil))[:16])
}

// Setting is one thing that determines a result, as text.
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Settings is everything that determines a result, in the order a
// difference is reported: the causes before what follows from them.
type Settings []Setting

// Digest is the sha256 (hex) of the settings: the result's identity.
func (s Settings) Digest() string {
	b, _ := json.Marshal(s)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Value is the value of the setting named name, "" when s has none.
func (s Settings) Value(name string) string {
	for _, e := range s {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// FirstDifference returns the first setting of s whose value differs in
// earlier (or that only one of them has), with the earlier and the current
// value; name is "" when they are equal.
func (s Settings) FirstDifference(earlier Settings) (name, was, now string) {
	old := map[string]string{}
	for _, e := range earlier {
		old[e.Name] = e.Value
	}
	for _, c := range s {
		v, ok := old[c.Name]
		switch {
		case !ok:
			return c.Name, "(not recorded)", c.Value
		case v != c.Value:
			return c.Name, v, c.Value
		}
		delete(old, c.Name)
	}
	for _, e := range earlier {
		if _, ok := old[e.Name]; ok {
			return e.Name, e.Value, "(none)"
		}
	}
	return "", "", ""
}

// modelFileExt are the files of a model folder the loaders may read.
var modelFileExt = []string{".json", ".safetensors", ".jinja", ".model", ".txt"}

// ModelFiles identifies a model's files cheaply, without reading whole
// checkpoints: for a file, its size, modification time and the sha256 of
// its first and last MiB; for a folder, the same over each of its .json,
// .safetensors, .jinja, .model and .txt files, combined. A built-in random
// model (tiny-random, random:…) is made by the code, which the versions name.
func ModelFiles(source string) (string, error) { return modelIdentity(source, true) }

// ModelContent is ModelFiles without the modification times: the same for
// two copies of one model, on two machines (what shards of a run compare).
func ModelContent(source string) (string, error) { return modelIdentity(source, false) }

func modelIdentity(source string, times bool) (string, error) {
	if source == models.TinyRandomModel || strings.HasPrefix(source, "random:") {
		return "built in (" + source + ")", nil
	}
	st, err := os.Stat(source)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return fileIdentity(source, st, times)
	}
	entries, err := os.ReadDir(source)
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range entries {
		for _, ext := range modelFileExt {
			if strings.HasSuffix(e.Name(), ext) {
				names = append(names, e.Name())
				break
			}
		}
	}
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		p := filepath.Join(source, name)
		st, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		if st.IsDir() {
			continue
		}
		id, err := fileIdentity(p, st, times)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s: %s\n", name, id)
	}
	if !times {
		return fmt.Sprintf("%d files, sha256 %s of their sizes and first and last MiB", len(names), hex.EncodeToString(h.Sum(nil))[:16]), nil
	}
	return fmt.Sprintf("%d files, sha256 %s of their sizes, times and first and last MiB", len(names), hex.EncodeToString(h.Sum(nil))[:16]), nil
}

// fileIdentity is "size N, modified T, sha256 H of the first and last MiB".
func fileIdentity(path string, st os.FileInfo, times bool) (string, error) {
	const mib = 1 << 20
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, f, mib); err != nil && err != io.EOF {
		return "", err
	}
	if st.Size() > mib {
		if _, err := f.Seek(max(mib, st.Size()-mib), io.SeekStart); err != nil {
			return "", err
		}
		if _, err := io.Copy(h, f); err != nil {
			return "", err
		}
	}
	if !times {
		return fmt.Sprintf("size %d, sha256 %s of the first and last MiB", st.Size(), hex.EncodeToString(h.Sum(nil))[:16]), nil
	}
	return fmt.Sprintf("size %d, modified %s, sha256 %s of the first and last MiB", st.Size(),
		st.ModTime().UTC().Format(time.RFC3339Nano), hex.EncodeToString(h.Sum(nil))[:16]), nil
}
