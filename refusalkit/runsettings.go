package refusalkit

// What determines an extraction's rows, recorded with its checkpoint so that
// --resume continues only the run the checkpoint belongs to.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/refusalkit/refusalkit/models"
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

// ExtractSettings gathers what determines an extraction's rows: the code's
// version (CodeVersion), the model (its resolved source, its files
// (ModelFiles), its config), the backend, the dataset's content, the
// sampled instructions and every generation setting.
func ExtractSettings(m *models.Model, cfg ExtractConfig) (RunSettings, error) {
	files, err := ModelFiles(m.Source)
	if err != nil {
		return nil, err
	}
	all, err := loadInstructions(cfg.Dataset)
	if err != nil {
		return nil, err
	}
	queries, err := SampleQueries(Instructions(all, Train), cfg.NSamples, cfg.Seed)
	if err != nil {
		return nil, err
	}
	config, _ := json.Marshal(m.Config)
	g := cfg.GenerateConfig
	num := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	return RunSettings{
		{"code", CodeVersion()},
		{"model", m.Source},
		{"model_files", files},
		{"model_config", "sha256 " + sha256Hex(config)[:16]},
		{"backend", m.Backend.Name()},
		{"dtype", models.DTypeName(m.DType())},
		{"dataset", datasetName(cfg.Dataset)},
		{"dataset_content", InstructionsDigest(all)},
		{"n_samples", strconv.Itoa(cfg.NSamples)},
		{"seed", strconv.FormatInt(g.Seed, 10)},
		{"queries", InstructionsDigest(queries)},
		{"n_completions", strconv.Itoa(g.NCompletions)},
		{"max_new_tokens", strconv.Itoa(g.MaxNewTokens)},
		{"generation_batch_size", strconv.Itoa(g.BatchSize)},
		{"refusal_instruction", strconv.Quote(g.RefusalInstruction)},
		{"temperature", num(g.Temperature)},
		{"top_p", num(g.TopP)},
		{"top_k", strconv.Itoa(g.TopK)},
		{"capture", strconv.FormatBool(g.Capture)},
		{"parse_special_tokens", strconv.FormatBool(g.ParseSpecialTokens)},
	}, nil
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

var codeVersion = sync.OnceValue(func() string {
	v := "refusalkit"
	if info, ok := debug.ReadBuildInfo(); ok {
		if info.Main.Version != "" {
			v += " " + info.Main.Version
		}
		rev, modified := "", ""
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision":
				rev = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				modified = "+modified"
			}
		}
		if rev != "" {
			v += " " + rev[:min(12, len(rev))] + modified
		}
	}
	v += fmt.Sprintf(", checkpoint format %d", CheckpointFormat)
	if exe, err := os.Executable(); err == nil {
		if f, err := os.Open(exe); err == nil {
			h := sha256.New()
			if _, err := io.Copy(h, f); err == nil {
				v += ", executable sha256 " + hex.EncodeToString(h.Sum(nil))[:16]
			}
			f.Close()
		}
	}
	return v
})

// CodeVersion names the code that runs: refusalkit's version and revision
// (from the build information), the checkpoint format, and the sha256 of
// the running executable, so that a rebuilt binary does not continue a
// checkpoint that other code started.
func CodeVersion() string { return codeVersion() }

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
