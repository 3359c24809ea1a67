package runs

// What determines a result, recorded with an extraction's checkpoint so that
// --resume continues only the run the checkpoint belongs to, and with every
// saved result so that it is reused only by a run that would compute the same.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/refusalkit/refusalkit/internal/buildinfo"
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/judge"
)

// CheckpointFormat is the version of the checkpoint's layout (.partial/);
// it is part of CodeVersion.
const CheckpointFormat = 2

// Setting is one thing that determines a run's rows, as text.
type Setting = refusalkit.Setting

// RunSettings is everything that determines an extraction's rows, in the
// order a difference is reported: the causes before what follows from them
// (refusalkit.Settings: the provenance record's run_settings).
type RunSettings = refusalkit.Settings

// modelSettings are what identify the model a result was made with: its
// resolved source, its files (ModelFiles), its config, the backend and the dtype.
func modelSettings(m *models.Model) (RunSettings, error) {
	files, err := ModelFiles(m.Source)
	if err != nil {
		return nil, err
	}
	config, _ := json.Marshal(m.Config)
	return RunSettings{
		{Name: "model", Value: m.Source},
		{Name: "model_files", Value: files},
		{Name: "model_config", Value: "sha256 " + sha256Hex(config)[:16]},
		{Name: "backend", Value: models.BackendName(m.Backend)},
		{Name: "dtype", Value: models.DTypeName(m.DType())},
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
	return slices.Concat(RunSettings{{Name: "code", Value: CodeVersion()}}, model, RunSettings{
		{Name: "dataset", Value: refusalkit.DatasetName(cfg.Dataset)},
		{Name: "dataset_content", Value: InstructionsDigest(all)},
		{Name: "n_samples", Value: strconv.Itoa(cfg.NSamples)},
		{Name: "seed", Value: strconv.FormatInt(*g.Seed, 10)},
		{Name: "queries", Value: InstructionsDigest(queries)},
		{Name: "n_completions", Value: strconv.Itoa(g.NCompletions)},
		{Name: "max_new_tokens", Value: strconv.Itoa(g.MaxNewTokens)},
		{Name: "generation_batch_size", Value: strconv.Itoa(g.BatchSize)},
		{Name: "refusal_instruction", Value: quoteAll(g.RefusalInstructions)},
		{Name: "temperature", Value: num(s.Temperature)},
		{Name: "top_p", Value: num(s.TopP)},
		{Name: "top_k", Value: strconv.Itoa(s.TopK)},
		{Name: "parse_special_tokens", Value: strconv.FormatBool(g.ParseSpecialTokens)},
	}, judgeSetting(cfg.Judge)), nil
}

// judgeSetting is the judge's setting: none for the default judge, so that
// a substring-judged run's settings are the ones recorded before judges
// could be chosen, and its name for any other.
func judgeSetting(name string) RunSettings {
	if name == "" || name == judge.Default {
		return nil
	}
	return RunSettings{{Name: "judge", Value: name}}
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
	return slices.Concat(RunSettings{{Name: "code", Value: CodeVersion()}}, model, RunSettings{
		{Name: "vector", Value: "sha256 " + hex.EncodeToString(vec.Sum(nil))[:16]},
		{Name: "kept_responses", Value: "sha256 " + hex.EncodeToString(kept.Sum(nil))[:16]},
		{Name: "dataset", Value: cfg.Dataset},
		{Name: "validation_queries", Value: InstructionsDigest(validation)},
		{Name: "test_queries", Value: InstructionsDigest(test)},
		{Name: "layer_selection", Value: cfg.LayerSelection},
		{Name: "max_kl", Value: num(cfg.MaxKL)},
		{Name: "target_refusal_rate", Value: num(cfg.TargetRefusalRate)},
		{Name: "refusal_tokens", Value: ids},
		{Name: "coefficients", Value: strings.Join(coeffs, " ")},
		{Name: "max_new_tokens", Value: strconv.Itoa(cfg.MaxNewTokens)},
		{Name: "batch_size", Value: strconv.Itoa(cfg.BatchSize)},
		{Name: "decoding", Value: sampling},
		{Name: "parse_special_tokens", Value: strconv.FormatBool(cfg.ParseSpecialTokens)},
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

// ModelFiles identifies a model's files cheaply (refusalkit.ModelFiles):
// the provenance record's model_hash, and a setting of every result.
func ModelFiles(source string) (string, error) { return refusalkit.ModelFiles(source) }

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
