package runs

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/judge"
	"github.com/refusalkit/refusalkit/refusalkit/tensorfile"
)

// A shard's folder (extract --shard i/M) holds the shard's generated
// responses (compliant_responses.json, refusal_responses.json, with the
// run's judge's verdicts), the activations of the responses it kept summed
// per side (shard_sums.f64) and shard.json, written last.
const (
	ShardFile     = "shard.json"     // the shard's record: its completion marker
	ShardSumsFile = "shard_sums.f64" // the refusal side's sums, then the compliant side's: [n_layers+1][d_model] float64 each
)

// DefaultShardDir is where extract --shard writes shard s by default:
// runs/{model_alias}/shards/i-of-M, beside the run's own folder.
func DefaultShardDir(modelAlias string, s refusalkit.Shard) string {
	return filepath.Join(filepath.Dir(DefaultDir(modelAlias)), "shards", fmt.Sprintf("%d-of-%d", s.Index, s.Count))
}

// ShardRecord is shard.json.
type ShardRecord struct {
	Shard refusalkit.Shard `json:"shard"`
	// Metadata is what metadata.json says of the shard's part: the model,
	// the settings (and their digest: the run's, which every shard shares),
	// the queries; its counts are the shard's.
	Metadata   Metadata `json:"metadata"`
	NRefusal   int      `json:"n_refusal_summed"`
	NCompliant int      `json:"n_compliant_summed"`
	SumsSHA256 string   `json:"sums_sha256"`
}

// saveShard writes a shard's folder: the response files, the sums, and
// shard.json last.
func (r *Run) saveShard(x *refusalkit.Extraction, md Metadata) error {
	for name, rs := range map[string][]refusalkit.Response{CompliantResponsesFile: x.Compliant, RefusalResponsesFile: x.Refusal} {
		if rs == nil {
			rs = []refusalkit.Response{}
		}
		if err := tensorfile.WriteJSONAtomic(r.path(name), rs); err != nil {
			return err
		}
	}
	var sums bytes.Buffer
	if err := writeMeans(&sums, []refusalkit.Response{{Means: x.RefusalSums.Sum}, {Means: x.CompliantSums.Sum}}); err != nil {
		return err
	}
	if err := tensorfile.WriteFileAtomic(r.path(ShardSumsFile), func(w io.Writer) error { _, err := w.Write(sums.Bytes()); return err }); err != nil {
		return err
	}
	return tensorfile.WriteJSONAtomic(r.path(ShardFile), ShardRecord{Shard: *x.Config.Shard, Metadata: md,
		NRefusal: x.RefusalSums.N, NCompliant: x.CompliantSums.N, SumsSHA256: sha256Hex(sums.Bytes())})
}

// shardPart is one shard folder as Merge reads it.
type shardPart struct {
	dir                string
	rec                ShardRecord
	refusal, compliant refusalkit.Sums
	rows               map[refusalkit.Mode][]refusalkit.Response
}

func readShard(dir string) (*shardPart, error) {
	p := &shardPart{dir: dir, rows: map[refusalkit.Mode][]refusalkit.Response{}}
	if err := ReadJSON(filepath.Join(dir, ShardFile), &p.rec); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, folderErrorf("%s holds no finished shard (%s): run `refusalkit extract --shard i/M` there, or let it finish (--resume)", dir, ShardFile)
		}
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, ShardSumsFile))
	if err != nil {
		return nil, folderErrorf("shard %s: %v: run the shard again with --overwrite", dir, err)
	}
	if got := sha256Hex(raw); got != p.rec.SumsSHA256 {
		return nil, folderErrorf("shard %s: %s does not go with its %s (sha256 %.16s, recorded %.16s): run the shard again with --overwrite", dir, ShardSumsFile, ShardFile, got, p.rec.SumsSHA256)
	}
	two := make([]refusalkit.Response, 2)
	if err := readMeans(bytes.NewReader(raw), two); err != nil {
		return nil, folderErrorf("shard %s: %s: %v: run the shard again with --overwrite", dir, ShardSumsFile, err)
	}
	p.refusal, p.compliant = refusalkit.Sums{Sum: two[0].Means, N: p.rec.NRefusal}, refusalkit.Sums{Sum: two[1].Means, N: p.rec.NCompliant}
	for mode, name := range map[refusalkit.Mode]string{refusalkit.ModeCompliant: CompliantResponsesFile, refusalkit.ModeRefusal: RefusalResponsesFile} {
		var rs []refusalkit.Response
		if err := ReadJSON(filepath.Join(dir, name), &rs); err != nil {
			return nil, folderErrorf("shard %s: %v: run the shard again with --overwrite", dir, err)
		}
		p.rows[mode] = rs
	}
	return p, nil
}

// sameRun reports the first way in which shard b's run differs from a's
// ("" when none): a setting, or the model's files, compared without their
// modification times, which differ between two machines' copies of a model.
func sameRun(a, b ShardRecord) (name, was, now string) {
	drop := func(s RunSettings) RunSettings {
		return slices.DeleteFunc(slices.Clone(s), func(x Setting) bool { return x.Name == "model_files" })
	}
	sa, sb := drop(a.Metadata.RunSettings), drop(b.Metadata.RunSettings)
	if sa.Digest() != sb.Digest() {
		return sb.FirstDifference(sa) // was: a's value, now: b's
	}
	if a.Metadata.ModelContent != b.Metadata.ModelContent {
		return "model_files", a.Metadata.ModelContent, b.Metadata.ModelContent
	}
	return "", "", ""
}

// Merge makes the run the shard folders hold into this folder: the six
// files and the vector a whole run writes, with the same responses in the
// same order, and the vector from the shards' sums (the difference of means
// of every kept response, as the whole run takes it). It refuses, by
// folder, a shard that is not finished, a shard of another run (another
// setting, naming it; the model files' modification times aside, which
// differ between machines), a shard given twice, and a missing one, and
// checks every query's completions are there exactly once. The folder's
// policy applies as to Extract: Fresh refuses a folder holding a run,
// Overwrite replaces it.
func (r *Run) Merge(shardDirs []string) (*refusalkit.Extraction, error) {
	if len(shardDirs) == 0 {
		return nil, folderErrorf("no shard folders to merge: give every shard's folder")
	}
	var parts []*shardPart
	for _, d := range shardDirs {
		p, err := readShard(d)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	first := parts[0]
	count := first.rec.Shard.Count
	byIndex := map[int]*shardPart{}
	for _, p := range parts {
		if p.rec.Shard.Count != count {
			return nil, folderErrorf("shard %s is shard %s, but %s is %s: give the shards of one split", p.dir, p.rec.Shard, first.dir, first.rec.Shard)
		}
		if name, was, now := sameRun(first.rec, p.rec); name != "" {
			return nil, folderErrorf("shard %s belongs to another run than %s (%s was %s, there %s): give the shards of one run", p.dir, first.dir, name, was, now)
		}
		if q := byIndex[p.rec.Shard.Index]; q != nil {
			return nil, folderErrorf("shards %s and %s are both shard %s: give each shard once", q.dir, p.dir, p.rec.Shard)
		}
		byIndex[p.rec.Shard.Index] = p
	}
	for i := range count {
		if byIndex[i] == nil {
			return nil, folderErrorf("shard %d/%d is missing: give its folder too (%d of %d given)", i, count, len(parts), count)
		}
	}
	slices.SortFunc(parts, func(a, b *shardPart) int { return cmp.Compare(a.rec.Shard.Index, b.rec.Shard.Index) })

	md := first.rec.Metadata
	x := &refusalkit.Extraction{Model: md.ModelPath, Config: md.config(), Queries: md.Queries, Timings: map[string]float64{}}
	var refusal, compliant refusalkit.Sums
	for _, p := range parts {
		if err := refusal.Add(p.refusal); err != nil {
			return nil, folderErrorf("shard %s: %v", p.dir, err)
		}
		if err := compliant.Add(p.compliant); err != nil {
			return nil, folderErrorf("shard %s: %v", p.dir, err)
		}
		x.Compliant = append(x.Compliant, p.rows[refusalkit.ModeCompliant]...)
		x.Refusal = append(x.Refusal, p.rows[refusalkit.ModeRefusal]...)
		for k, v := range p.rec.Metadata.TimingsSeconds {
			x.Timings[k] = max(x.Timings[k], v) // the shards ran side by side
		}
	}
	for _, rs := range [][]refusalkit.Response{x.Compliant, x.Refusal} {
		if err := checkCoverage(rs, len(x.Queries), x.Config.NCompletions, shardDirs); err != nil {
			return nil, err
		}
	}
	jd, err := judge.ByName(x.Config.Judge)
	if err != nil {
		return nil, err
	}
	x.FilteredCompliant = refusalkit.FilterResponsesWith(jd, x.Compliant, false)
	x.FilteredRefusal = refusalkit.FilterResponsesWith(jd, x.Refusal, true)
	if refusal.N != len(x.FilteredRefusal) || compliant.N != len(x.FilteredCompliant) {
		return nil, folderErrorf("the shards summed %d refusal and %d compliant responses, but their files keep %d and %d: run the shards again with --overwrite",
			refusal.N, compliant.N, len(x.FilteredRefusal), len(x.FilteredCompliant))
	}
	x.RefusalSums, x.CompliantSums = refusal, compliant

	if err := CheckExtractionDir(r.Dir, r.policy == overwrite, false); err != nil {
		return nil, err
	}
	if err := r.clearForExtraction(); err != nil {
		return nil, err
	}
	if err := RemoveStaleTemps(r.Dir); err != nil {
		return nil, err
	}
	var vecErr error
	x.Vector, vecErr = refusalkit.VectorFromSums(md.ModelAlias, refusal, compliant)
	merged := metadataOf(md, x)
	if err := r.saveExtraction(x, merged); err != nil {
		return nil, err
	}
	if vecErr != nil {
		return x, fmt.Errorf("%w (every response of the %d shards is saved in %s)", vecErr, count, r.Dir)
	}
	return x, nil
}

// checkCoverage checks rs holds each query's completions exactly once, in
// the order a whole run makes them (sorting them there).
func checkCoverage(rs []refusalkit.Response, nQueries, nCompletions int, dirs []string) error {
	slices.SortStableFunc(rs, func(a, b refusalkit.Response) int {
		return cmp.Or(cmp.Compare(a.QueryIndex, b.QueryIndex), cmp.Compare(a.CompletionIndex, b.CompletionIndex))
	})
	if len(rs) != nQueries*nCompletions {
		return folderErrorf("the shards in %s hold %d responses of a mode where the run has %d (%d queries × %d completions): give the shards of one run",
			strings.Join(dirs, ", "), len(rs), nQueries*nCompletions, nQueries, nCompletions)
	}
	for i, r := range rs {
		if q, c := i/nCompletions, i%nCompletions; r.QueryIndex != q || r.CompletionIndex != c {
			return folderErrorf("the shards do not hold query %d's completion %d exactly once (found query %d completion %d there): give the shards of one run", q, c, r.QueryIndex, r.CompletionIndex)
		}
	}
	return nil
}

// MergeShards is Open(dir, opts...) then Merge, for scripts.
func MergeShards(dir string, shardDirs []string, opts ...OpenOption) (*refusalkit.Extraction, error) {
	r, err := Open(dir, opts...)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Merge(shardDirs)
}
