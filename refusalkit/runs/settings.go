package runs

// What determines a result, recorded with an extraction's checkpoint so that
// --resume continues only the run the checkpoint belongs to, and with every
// saved result so that it is reused only by a run that would compute the same.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/refusalkit/refusalkit/internal/buildinfo"
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/judge"
)

// CheckpointFormat is the version of the checkpoint's layout (.partial/);
// it is part of CodeVersion.
const CheckpointFormat = 2

// Setting is one thing that determines a run's rows, as text.
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// RunSettings is everything that determines an extraction's rows, in the
// order a difference is reported: the causes before what follows from them.
type RunSettings []Setting

// Digest is the sha256 (hex) of the settings: the run's identity.
func (s RunSettings) Digest() string {
	b, _ := json.Marshal(s)
	return sha256Hex(b)
}

// FirstDifference returns the first setting of s whose value differs in
// earlier (or that only one of them has), with the earlier and the current
// value; name is "" when they are equal.
func (s RunSettings) FirstDifference(earlier RunSettings) (name, was, now string) {
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

// modelSettings are what identify the model a result was made with: its
// resolved source, its files (ModelFiles), its config, the backend and the dtype.
func modelSettings(m *models.Model) (RunSettings, error) {
	files, err := ModelFiles(m.Source)
	if err != nil {
		return nil, err
	}
	config, _ := json.Marshal(m.Config)
	return RunSettings{
		{"model", m.Source},
		{"model_files", files},
		{"model_config", "sha256 " + sha256Hex(config)[:16]},
		{"backend", models.BackendName(m.Backend)},
		{"dtype", models.DTypeName(m.DType())},
	}, nil
}

func num(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// ExtractSettings gathers what determines an extraction's rows: the code's
// version (CodeVersion), the model (modelSettings), the dataset's content,
// the sampled instructions and every generation setting, defaults filled in.
func ExtractSettings(m *models.Model, cfg refusalkit.ExtractConfig) (RunSettings, error) {
	cfg = cfg.WithDefaults()
	model, err := modelSettings(m)
	if err != nil {
		return nil, err
	}
	all, err := refusalkit.LoadInstructions(cfg.Dataset)
	if err != nil {
		return nil, err
	}
	queries, err := refusalkit.SampleQueries(refusalkit.Instructions(all, refusalkit.Train), cfg.NSamples, *cfg.Seed)
	if err != nil {
		return nil, err
	}
	g, s := cfg.GenerateConfig, *cfg.Sampling
	return slices.Concat(RunSettings{{"code", CodeVersion()}}, model, RunSettings{
		{"dataset", refusalkit.DatasetName(cfg.Dataset)},
		{"dataset_content", InstructionsDigest(all)},
		{"n_samples", strconv.Itoa(cfg.NSamples)},
		{"seed", strconv.FormatInt(*g.Seed, 10)},
		{"queries", InstructionsDigest(queries)},
		{"n_completions", strconv.Itoa(g.NCompletions)},
		{"max_new_tokens", strconv.Itoa(g.MaxNewTokens)},
		{"generation_batch_size", strconv.Itoa(g.BatchSize)},
		{"refusal_instruction", quoteAll(g.RefusalInstructions)},
		{"temperature", num(s.Temperature)},
		{"top_p", num(s.TopP)},
		{"top_k", strconv.Itoa(s.TopK)},
		{"parse_special_tokens", strconv.FormatBool(g.ParseSpecialTokens)},
	}, judgeSetting(cfg.Judge)), nil
}

// judgeSetting is the judge's setting: none for the default judge, so that
// a substring-judged run's settings are the ones recorded before judges
// could be chosen, and its name for any other.
func judgeSetting(name string) RunSettings {
	if name == "" || name == judge.Default {
		return nil
	}
	return RunSettings{{"judge", name}}
}

// quoteAll lists texts quoted, in order, comma-separated: one text reads
// as it did before runs could have several refusal instructions.
func quoteAll(texts []string) string {
	q := make([]string, len(texts))
	for i, t := range texts {
		q[i] = strconv.Quote(t)
	}
	return strings.Join(q, ", ")
}

// EvalSettings gathers what determines an evaluation: the code, the model,
// the vector and the responses it was made from (x's own settings digest,
// or the vector's values when x carries none), the validation and test
// queries, and every evaluation setting, defaults filled in.
func EvalSettings(m *models.Model, x *refusalkit.Extraction, cfg refusalkit.EvalConfig) (RunSettings, error) {
	cfg = cfg.WithDefaults()
	model, err := modelSettings(m)
	if err != nil {
		return nil, err
	}
	if x.Vector == nil {
		return nil, fmt.Errorf("the extraction has no refusal vector to evaluate")
	}
	validation, test, err := refusalkit.EvalPlan(cfg, x.Instructions())
	if err != nil {
		return nil, err
	}
	vec := sha256.New()
	for _, f := range x.Vector.Flat() {
		fmt.Fprintf(vec, "%08x", math.Float32bits(f))
	}
	kept := sha256.New()
	for _, rs := range [][]refusalkit.Response{x.FilteredRefusal, x.FilteredCompliant} {
		for _, r := range rs {
			fmt.Fprintf(kept, "%d:%s|%v\n", len(r.Response), r.Response, r.TokenIDs)
		}
	}
	ids := "derived from the kept responses"
	if cfg.RefusalTokenIDs != nil {
		ids = fmt.Sprint(cfg.RefusalTokenIDs)
	}
	sampling := "greedy"
	if cfg.Sampling != nil {
		sampling = fmt.Sprintf("%s, seed %d", cfg.Sampling, *cfg.Seed)
	}
	coeffs := make([]string, len(cfg.Coefficients))
	for i, c := range cfg.Coefficients {
		coeffs[i] = num(c)
	}
	return slices.Concat(RunSettings{{"code", CodeVersion()}}, model, RunSettings{
		{"vector", "sha256 " + hex.EncodeToString(vec.Sum(nil))[:16]},
		{"kept_responses", "sha256 " + hex.EncodeToString(kept.Sum(nil))[:16]},
		{"dataset", cfg.Dataset},
		{"validation_queries", InstructionsDigest(validation)},
		{"test_queries", InstructionsDigest(test)},
		{"layer_selection", cfg.LayerSelection},
		{"max_kl", num(cfg.MaxKL)},
		{"target_refusal_rate", num(cfg.TargetRefusalRate)},
		{"refusal_tokens", ids},
		{"coefficients", strings.Join(coeffs, " ")},
		{"max_new_tokens", strconv.Itoa(cfg.MaxNewTokens)},
		{"batch_size", strconv.Itoa(cfg.BatchSize)},
		{"decoding", sampling},
		{"parse_special_tokens", strconv.FormatBool(cfg.ParseSpecialTokens)},
	}, judgeSetting(cfg.Judge)), nil
}

// InstructionsDigest describes a list of instructions by its length and
// the sha256 of its texts, in order.
func InstructionsDigest(instructions []string) string {
	h := sha256.New()
	for _, s := range instructions {
		fmt.Fprintf(h, "%d:%s\n", len(s), s)
	}
	return fmt.Sprintf("sha256 %s of %d instructions", hex.EncodeToString(h.Sum(nil))[:16], len(instructions))
}

// CodeVersion names the code that runs (buildinfo.Code: its version, and
// the sha256 of its sources or of the executable) and the checkpoint
// format, so that other code does not continue a checkpoint or reuse a
// result that this code would compute differently.
func CodeVersion() string {
	return fmt.Sprintf("%s, checkpoint format %d", buildinfo.Code(), CheckpointFormat)
}

// modelFileExt are the files of a model folder the loaders may read.
var modelFileExt = []string{".json", ".safetensors", ".jinja", ".model", ".txt"}

// ModelFiles identifies a model's files cheaply, without reading whole
// checkpoints: for a file, its size, modification time and the sha256 of
// its first and last MiB; for a folder, the same over each of its .json,
// .safetensors, .jinja, .model and .txt files, combined. A built-in random
// model (tiny-random, random:…) is made by the code, which CodeVersion names.
func ModelFiles(source string) (string, error) {
	if source == models.TinyRandomModel || strings.HasPrefix(source, "random:") {
		return "built in (" + source + ")", nil
	}
	st, err := os.Stat(source)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return fileIdentity(source, st)
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
		id, err := fileIdentity(p, st)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s: %s\n", name, id)
	}
	return fmt.Sprintf("%d files, sha256 %s of their sizes, times and first and last MiB", len(names), hex.EncodeToString(h.Sum(nil))[:16]), nil
}

// fileIdentity is "size N, modified T, sha256 H of the first and last MiB".
func fileIdentity(path string, st os.FileInfo) (string, error) {
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
	return fmt.Sprintf("size %d, modified %s, sha256 %s of the first and last MiB", st.Size(),
		st.ModTime().UTC().Format(time.RFC3339Nano), hex.EncodeToString(h.Sum(nil))[:16]), nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
