// Package runs owns run folders: where a run goes, the spec's files in it,
// written atomically with completion markers, and read back; one run per
// folder at a time; checkpoints that resume an interrupted extraction; and
// the reuse of a result only when everything that determined it matches.
//
// The steps of the method (package refusalkit) take values and return
// values; a Run is what saves them and reads them back, for the commands,
// the notebook and scripts alike:
//
//	run := runs.MustOpen(runs.DefaultDir(m.Alias()))
//	x := run.MustExtract(m, refusalkit.ExtractConfig{})        // computed, or read back
//	ev := run.MustEvaluate(m, x, refusalkit.EvalConfig{})
//	charts.MustWriteRun(run.Dir)                               // package charts draws the folder
package runs

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/tensorfile"
)

// RootEnvVar moves the folder runs go under (default "runs").
const RootEnvVar = "REFUSALKIT_RUNS"

// DefaultDir is the spec's output folder for a model,
// runs/{model_alias}/harmless_refusal_vectors, under $REFUSALKIT_RUNS when set.
func DefaultDir(modelAlias string) string {
	root := os.Getenv(RootEnvVar)
	if root == "" {
		root = "runs"
	}
	return filepath.Join(root, modelAlias, "harmless_refusal_vectors")
}

// Run is a run folder held by this process: an extraction, then the
// evaluation of its vector, as the spec's files.
type Run struct {
	Dir     string
	lock    *Lock
	policy  policy
	command string // names the lock's holder
}

// policy is what Extract and Evaluate do with what the folder already
// holds of their stage (the OpenOptions below).
type policy int

const (
	reuse        policy = iota // read back the same settings' result, continue their checkpoint, refuse others
	replaceStale               // reuse, but replace other settings' result
	fresh                      // refuse any result of the stage, finished or interrupted
	overwrite                  // replace any result of the stage
	resume                     // Extract: continue an interrupted extraction only
)

// OpenOption changes what Open's Run does with results already in the
// folder. By default Extract and Evaluate read back a result made with the
// same settings, an extraction continues its own interrupted checkpoint,
// and a result made with other settings is refused, naming the first
// difference: what a notebook re-run wants. ReplaceStale, Fresh, Overwrite
// and Resume change that; the last one given wins. Whatever the policy, a
// stage refused for what the folder holds returns a *FolderError and
// touches nothing; one that goes ahead first removes what killed runs left
// half-written (RemoveStaleTemps).
type OpenOption func(*Run)

// ReplaceStale lets Extract and Evaluate replace a saved result made with
// other settings (removing it and what was made from it) instead of
// refusing it: for a notebook whose settings a researcher changes.
func ReplaceStale(r *Run) { r.policy = replaceStale }

// Fresh has Extract and Evaluate refuse a folder that holds any result of
// their stage, finished or interrupted, whatever its settings: a run never
// stands in for, or continues, one it was not asked to (the commands'
// default, CheckExtractionDir and CheckEvaluationDir).
func Fresh(r *Run) { r.policy = fresh }

// Overwrite has Extract and Evaluate replace what the folder holds of their
// stage, and what was made from it (an extraction's evaluation, ablation
// and charts), whatever its settings (the commands' --overwrite).
func Overwrite(r *Run) { r.policy = overwrite }

// Resume has Extract continue the interrupted extraction the folder holds,
// from its checkpoint, and refuse a folder that holds none, a finished one,
// or one made with other settings (naming the first difference); Evaluate
// then behaves as under Fresh (the commands' extract --resume).
func Resume(r *Run) { r.policy = resume }

// Command names what holds the folder, for the message another run gets
// (default "run").
func Command(name string) OpenOption { return func(r *Run) { r.command = name } }

// Open creates the run folder dir if needed and takes its lock for this
// process: no other run writes it until Close, or until the process ends.
// A folder another run holds is refused with an *InUseError.
func Open(dir string, opts ...OpenOption) (*Run, error) {
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return nil, fmt.Errorf("run folder %s is a file: give a folder", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create run folder %s (%v): choose a writable folder", dir, err)
	}
	r := &Run{Dir: dir, command: "run"}
	for _, o := range opts {
		o(r)
	}
	var err error
	if r.lock, err = LockDir(dir, r.command); err != nil {
		return nil, err
	}
	return r, nil
}

// MustOpen is Open for notebooks.
func MustOpen(dir string, opts ...OpenOption) *Run { return must(Open(dir, opts...)) }

// Close releases the folder's lock.
func (r *Run) Close() error { return r.lock.Release() }

func (r *Run) path(name string) string { return filepath.Join(r.Dir, name) }

func (r *Run) has(name string) bool {
	_, err := os.Stat(r.path(name))
	return err == nil
}

// SaveExtraction writes the spec's extraction files: every response file
// and metadata.json always, the vector when there is one. metadata.json is
// written last and says "complete": true only with a vector.
func (r *Run) SaveExtraction(m *models.Model, x *refusalkit.Extraction) error {
	md := MetadataFor(m, x)
	if settings, err := ExtractSettings(m, x.Config); err == nil {
		if x.ResponsesFrom != "" { // not what this code would generate: never reused as if it were
			settings = append(settings, Setting{Name: "responses_from", Value: x.ResponsesFrom})
		}
		md.Provenance = refusalkit.ProvenanceOf(m, settings)
	}
	return r.saveExtraction(x, md)
}

func (r *Run) saveExtraction(x *refusalkit.Extraction, md Metadata) error {
	files := map[string][]refusalkit.Response{
		CompliantResponsesFile: x.Compliant, RefusalResponsesFile: x.Refusal,
		FilteredCompliantResponsesFile: x.FilteredCompliant, FilteredRefusalResponsesFile: x.FilteredRefusal,
	}
	for name, rs := range files {
		if rs == nil {
			rs = []refusalkit.Response{}
		}
		if err := tensorfile.WriteJSONAtomic(r.path(name), rs); err != nil {
			return err
		}
	}
	if x.Vector != nil {
		if x.Vector.Provenance == nil {
			x.Vector.Provenance = ExtractionProvenance(x, md)
		}
		if err := SaveVector(r.Dir, x.Vector); err != nil {
			return err
		}
	}
	return tensorfile.WriteJSONAtomic(r.path(MetadataFile), md)
}

// Metadata reads metadata.json.
func (r *Run) Metadata() (*Metadata, error) {
	var md Metadata
	if err := ReadJSON(r.path(MetadataFile), &md); err != nil {
		return nil, err
	}
	return &md, nil
}

// Extraction reads the saved extraction back (ReadExtraction).
func (r *Run) Extraction() (*refusalkit.Extraction, error) { return ReadExtraction(r.Dir) }

// ReadExtraction reads what dir holds of an extraction: its settings and
// queries (metadata.json), the response files (without activations: they
// are not saved) and the vector, each when present; a vector folder may
// hold the vector alone.
func ReadExtraction(dir string) (*refusalkit.Extraction, error) {
	x := &refusalkit.Extraction{Source: dir}
	var md Metadata
	if err := ReadJSON(filepath.Join(dir, MetadataFile), &md); err == nil {
		x.Model, x.Config, x.Queries, x.Timings = md.ModelPath, md.config(), md.Queries, md.TimingsSeconds
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for name, dst := range map[string]*[]refusalkit.Response{
		CompliantResponsesFile: &x.Compliant, RefusalResponsesFile: &x.Refusal,
		FilteredCompliantResponsesFile: &x.FilteredCompliant, FilteredRefusalResponsesFile: &x.FilteredRefusal,
	} {
		if err := ReadJSON(filepath.Join(dir, name), dst); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, VectorSafetensorsFile)); err == nil || md.Complete {
		var err error
		if x.Vector, err = LoadVector(dir); err != nil {
			return nil, err
		}
	}
	return x, nil
}

// Extract returns the extraction these settings make, with the folder's
// policy (OpenOption) deciding what becomes of one already there. By
// default it is read back when made with the same settings
// (ExtractSettings: the code, the model's files, config, backend and dtype,
// the data and every generation setting), continued from its checkpoint
// when one was interrupted, else computed with refusalkit.Extract and
// saved; one made with other settings is refused, naming the first
// difference, unless the Run was opened with ReplaceStale. Fresh, Overwrite
// and Resume are the commands' rules (CheckExtractionDir). Every response
// is saved even when too few are kept for a vector (the error is then
// refusalkit.ErrTooFewResponses, with the extraction).
func (r *Run) Extract(m *models.Model, cfg refusalkit.ExtractConfig, opts ...refusalkit.Option) (*refusalkit.Extraction, error) {
	cfg = cfg.WithDefaults()
	settings, err := ExtractSettings(m, cfg)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.Shard == nil && (r.policy == reuse || r.policy == replaceStale):
		if x, done, err := r.savedExtraction(settings, cfg); done {
			return x, err
		}
	default: // a shard's folder is never reused: its files are a part, which Merge reads
		if err := CheckExtractionDir(r.Dir, r.policy == overwrite, r.policy == resume); err != nil {
			return nil, err
		}
	}
	if err := r.clearForExtraction(); err != nil {
		return nil, err
	}
	// A checkpoint with these settings resumes; one with others is refused
	// (with ReplaceStale, replaced).
	if err := CheckResumable(r.Dir, settings, r.policy == resume); err != nil {
		if r.policy != replaceStale {
			return nil, err
		}
		if err := r.RemoveExtraction(); err != nil {
			return nil, err
		}
		if err := CheckResumable(r.Dir, settings, false); err != nil {
			return nil, err
		}
	}
	if err := RemoveStaleTemps(r.Dir); err != nil { // what killed runs left half-written
		return nil, err
	}
	cp := DirCheckpoint{Dir: r.path(PartialDir), Run: settings.Digest()}
	if cfg.Shard != nil { // a shard's batches are its own: never resumed as another shard's
		cp.Run += " shard " + cfg.Shard.String()
	}
	x, runErr := refusalkit.Extract(m, cfg, append(opts, refusalkit.WithCheckpoint(cp))...)
	if x == nil {
		return nil, runErr
	}
	saved := MetadataFor(m, x)
	saved.Provenance = refusalkit.ProvenanceOf(m, settings)
	save := r.saveExtraction
	if cfg.Shard != nil {
		save = r.saveShard
	}
	if err := save(x, saved); err != nil {
		return nil, err
	}
	if err := RemoveCheckpoint(r.Dir); err != nil { // every file is saved: the checkpoint is spent
		return nil, err
	}
	return x, runErr
}

// clearForExtraction readies a folder whose checks have passed for a new
// extraction: it must take new files, and with Overwrite everything the
// previous run and what was made from it wrote goes, completion markers
// first, so a folder interrupted from here on never looks like a finished run.
func (r *Run) clearForExtraction() error {
	if err := CheckWritable(r.Dir); err != nil {
		return err
	}
	if r.policy == overwrite {
		return r.RemoveExtraction()
	}
	return nil
}

// savedExtraction is the default policy's reading of the folder: done with
// the saved extraction when it was made with these settings, done with an
// error when it was made with others (or, with evaluation files and no
// extraction, holds another's), not done when there is nothing to reuse
// (what ReplaceStale replaces is removed then).
func (r *Run) savedExtraction(settings RunSettings, cfg refusalkit.ExtractConfig) (x *refusalkit.Extraction, done bool, err error) {
	md, err := r.Metadata()
	switch {
	case err == nil && md.RunDigest == settings.Digest():
		x, err := r.Extraction()
		if err != nil {
			return nil, true, err
		}
		x.Config = cfg
		if x.Vector == nil { // as when it was made: every response, and the same error
			return x, true, fmt.Errorf("%w: the saved extraction in %s kept %d of %d compliant and %d of %d refusal responses",
				refusalkit.ErrTooFewResponses, r.Dir, len(x.FilteredCompliant), len(x.Compliant), len(x.FilteredRefusal), len(x.Refusal))
		}
		return x, true, nil
	case err == nil && r.policy != replaceStale:
		name, was, now := settings.FirstDifference(md.RunSettings)
		return nil, true, folderErrorf("%s holds an extraction made with other settings (%s was %s, now %s): use another folder, or open it with runs.ReplaceStale to replace it",
			r.Dir, name, was, now)
	case err == nil:
		if err := r.RemoveExtraction(); err != nil {
			return nil, true, err
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, true, err
	}
	// No finished extraction here: evaluation files would be another's.
	if state, marker := EvaluationState(r.Dir); state != EvalNone {
		if r.policy != replaceStale {
			return nil, true, folderErrorf("%s holds evaluation files (%s) but no extraction: use another folder, or open it with runs.ReplaceStale to replace them", r.Dir, marker)
		}
		if err := r.RemoveEvaluation(); err != nil {
			return nil, true, err
		}
	}
	return nil, false, nil
}

// MustExtract is Extract for notebooks.
func (r *Run) MustExtract(m *models.Model, cfg refusalkit.ExtractConfig, opts ...refusalkit.Option) *refusalkit.Extraction {
	return must(r.Extract(m, cfg, opts...))
}

// Rejudge saves the extraction that x's own responses make with another
// judge (refusalkit.Rejudge: nothing is generated; x.ResponsesFrom names
// where they came from, and keeps it from ever being reused as a generated
// run): into a folder that holds no run, or, opened with Overwrite, in
// place of the one it holds (CheckExtractionDir). The error is
// refusalkit.ErrTooFewResponses, with the extraction, when the judge keeps
// too few for a vector.
func (r *Run) Rejudge(m *models.Model, x *refusalkit.Extraction, judgeName string) (*refusalkit.Extraction, error) {
	if err := CheckExtractionDir(r.Dir, r.policy == overwrite, false); err != nil {
		return nil, err
	}
	if err := r.clearForExtraction(); err != nil {
		return nil, err
	}
	if err := RemoveStaleTemps(r.Dir); err != nil { // what killed runs left half-written
		return nil, err
	}
	y, runErr := refusalkit.Rejudge(m, x, judgeName)
	if y == nil {
		return nil, runErr
	}
	if err := r.SaveExtraction(m, y); err != nil {
		return nil, err
	}
	return y, runErr
}

// SaveEvaluation writes layer_selection_scores.json, one
// eval_completions_coeff_{c}.json per coefficient, and eval_summary.json
// (see SaveEvaluation).
func (r *Run) SaveEvaluation(m *models.Model, x *refusalkit.Extraction, ev *refusalkit.Evaluation) error {
	sum := evalSummaryFile{EvalSummary: ev.Summary}
	if sum.VectorDir == "" {
		sum.VectorDir = r.Dir
	}
	if settings, err := EvalSettings(m, x, ev.Config); err == nil {
		sum.Provenance = refusalkit.ProvenanceOf(m, settings)
	}
	return SaveEvaluation(r.Dir, ev, sum)
}

// Evaluation reads the saved evaluation back: the layer scores, every
// coefficient's completions and the summary.
func (r *Run) Evaluation() (*refusalkit.Evaluation, error) {
	var sum evalSummaryFile
	if err := ReadJSON(r.path(EvalSummaryFile), &sum); err != nil {
		return nil, err
	}
	s := sum.EvalSummary
	ev := &refusalkit.Evaluation{Summary: s, Test: s.TestQueries, Completions: map[float64][]refusalkit.EvalCompletion{}}
	ev.Scores = &refusalkit.LayerScores{}
	if err := ReadJSON(r.path(LayerSelectionFile), ev.Scores); err != nil {
		return nil, err
	}
	ev.Validation = ev.Scores.ValidationQueries
	if r.has(CalibrationFile) {
		ev.Calibration = &refusalkit.Calibration{}
		if err := ReadJSON(r.path(CalibrationFile), ev.Calibration); err != nil {
			return nil, err
		}
	}
	for _, c := range s.Coefficients {
		var cs []refusalkit.EvalCompletion
		if err := ReadJSON(r.path(CompletionsFile(c)), &cs); err != nil {
			return nil, err
		}
		ev.Completions[c] = cs
	}
	vseed, tseed := s.ValidationSeed, s.TestSeed
	ev.Config = refusalkit.EvalConfig{NValidation: s.NValidationSamples, NTest: s.NTestSamples,
		ValidationSeed: &vseed, TestSeed: &tseed,
		SweepConfig: refusalkit.SweepConfig{Coefficients: s.Coefficients, MaxNewTokens: s.MaxNewTokens, BatchSize: s.BatchSize,
			ParseSpecialTokens: s.ParseSpecialTokens}}
	if s.Dataset != refusalkit.AlpacaSource {
		ev.Config.Dataset = s.Dataset
	}
	switch s.LayerSelectionMethod {
	case "norm", "steering_kl":
		ev.Config.LayerSelection = s.LayerSelectionMethod
	}
	ev.Config.MaxKL = s.MaxKL
	if cal := ev.Calibration; cal != nil {
		ev.Config.TargetRefusalRate = cal.TargetRefusalRate
		if cal.AddedToSweep {
			ev.Config.Coefficients = slices.DeleteFunc(slices.Clone(s.Coefficients), func(c float64) bool { return c == cal.Coefficient })
		}
	}
	if r.has(VectorSafetensorsFile) {
		var err error
		if ev.Vector, err = LoadVector(r.Dir); err != nil {
			return nil, err
		}
	}
	return ev, nil
}

// Evaluate returns the evaluation of x these settings make, with the
// folder's policy (OpenOption) deciding what becomes of one already there.
// By default it is read back when the folder holds one made with the same
// settings (EvalSettings, which include x's own digest), else computed with
// refusalkit.Evaluate and saved; one made with other settings, or an
// interrupted one, is refused unless the Run was opened with ReplaceStale.
// Fresh and Resume refuse any evaluation there, Overwrite replaces it
// (CheckEvaluationDir). An x read from a vector file (Source a file) has
// its vector saved into the folder first, so the folder holds the vector it
// evaluates; the summary's vector_dir is x.Source, else the folder.
func (r *Run) Evaluate(m *models.Model, x *refusalkit.Extraction, cfg refusalkit.EvalConfig, opts ...refusalkit.Option) (*refusalkit.Evaluation, error) {
	cfg = cfg.WithDefaults()
	settings, err := EvalSettings(m, x, cfg)
	if err != nil {
		return nil, err
	}
	switch r.policy {
	case reuse, replaceStale:
		if ev, done, err := r.savedEvaluation(settings, x, cfg); done {
			return ev, err
		}
	default:
		if err := CheckEvaluationDir(r.Dir, r.policy == overwrite); err != nil {
			return nil, err
		}
	}
	if err := CheckWritable(r.Dir); err != nil {
		return nil, err
	}
	if r.policy == overwrite {
		if err := r.RemoveEvaluation(); err != nil { // every coefficient's file, and the evaluation charts
			return nil, err
		}
	}
	if err := RemoveStaleTemps(r.Dir); err != nil { // what killed runs left half-written
		return nil, err
	}
	if st, err := os.Stat(x.Source); err == nil && !st.IsDir() {
		// export, ablate and inspect then take the folder as a --vector_dir.
		if err := SaveVector(r.Dir, x.Vector); err != nil {
			return nil, err
		}
	}
	ev, err := refusalkit.Evaluate(m, x, cfg, opts...)
	if err != nil {
		return nil, err
	}
	ev.Summary.VectorDir = cmp.Or(x.Source, r.Dir)
	ev.Summary.Provenance = refusalkit.ProvenanceOf(m, settings)
	return ev, SaveEvaluation(r.Dir, ev, evalSummaryFile{ev.Summary})
}

// savedEvaluation is the default policy's reading of the folder: done with
// the saved evaluation when it was made with these settings, done with an
// error when it was made with others or was interrupted (unless
// ReplaceStale), not done when there is nothing to reuse.
func (r *Run) savedEvaluation(settings RunSettings, x *refusalkit.Extraction, cfg refusalkit.EvalConfig) (ev *refusalkit.Evaluation, done bool, err error) {
	switch state, marker := EvaluationState(r.Dir); state {
	case EvalComplete:
		var sum evalSummaryFile
		if err := ReadJSON(r.path(EvalSummaryFile), &sum); err != nil {
			return nil, true, err
		}
		if sum.RunDigest == settings.Digest() {
			ev, err := r.Evaluation()
			if err == nil {
				ev.Config, ev.Vector = cfg, x.Vector
			}
			return ev, true, err
		}
		if r.policy != replaceStale {
			name, was, now := settings.FirstDifference(sum.RunSettings)
			return nil, true, folderErrorf("%s holds an evaluation made with other settings (%s was %s, now %s): use another folder, or open it with runs.ReplaceStale to replace it",
				r.Dir, name, was, now)
		}
	case EvalInterrupted:
		if r.policy != replaceStale {
			return nil, true, folderErrorf("%s holds an interrupted evaluation (%s): open it with runs.ReplaceStale to replace it", r.Dir, marker)
		}
	}
	return nil, false, nil
}

// MustEvaluate is Evaluate for notebooks.
func (r *Run) MustEvaluate(m *models.Model, x *refusalkit.Extraction, cfg refusalkit.EvalConfig, opts ...refusalkit.Option) *refusalkit.Evaluation {
	return must(r.Evaluate(m, x, cfg, opts...))
}

// RemoveExtraction removes what an extraction and the evaluation and
// ablation of its vector wrote, with their charts: the completion markers first, so a
// folder caught halfway never looks finished. Nothing else is touched.
func (r *Run) RemoveExtraction() error {
	if err := os.RemoveAll(r.path(MetadataFile)); err != nil {
		return err
	}
	if err := r.RemoveEvaluation(); err != nil {
		return err
	}
	if err := r.RemoveAblation(); err != nil { // made from the vector too
		return err
	}
	if err := RemoveExtraction(r.Dir); err != nil {
		return err
	}
	return RemoveCharts(r.Dir, ExtractionCharts)
}

// RemoveEvaluation removes what an evaluation wrote, with its charts.
func (r *Run) RemoveEvaluation() error {
	if err := RemoveEvaluation(r.Dir); err != nil {
		return err
	}
	return RemoveCharts(r.Dir, EvaluationCharts)
}

// Files lists the folder's entries (the lock file aside), sorted.
func (r *Run) Files() ([]string, error) {
	entries, err := os.ReadDir(r.Dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.Name() != LockFile {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// MustFiles is Files for notebooks.
func (r *Run) MustFiles() []string { return must(r.Files()) }

// RemoveCharts removes the named charts of dir, and the charts folder if
// that leaves it empty.
func RemoveCharts(dir string, names []string) error {
	cd := filepath.Join(dir, ChartsDir)
	for _, name := range names {
		if err := os.Remove(filepath.Join(cd, name+".html")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	_ = os.Remove(cd) // only succeeds when empty
	return nil
}

// ReadJSON decodes the run-folder file at path into v, naming the file and
// the fix when it is not valid.
func ReadJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return &invalidFileError{fmt.Sprintf("%s is not a valid refusalkit file (%v): re-run the step that writes it", path, err)}
	}
	return nil
}

// invalidFileError is a file that does not hold what refusalkit writes there.
type invalidFileError struct{ msg string }

func (e *invalidFileError) Error() string { return e.msg }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
