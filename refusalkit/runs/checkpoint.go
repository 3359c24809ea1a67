package runs

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/tensorfile"
)

// DirCheckpoint keeps batches as files in dir: the responses as JSON and
// their captured activations as raw float64, each written atomically, so a
// batch is either fully there or absent. Each batch records the digest of
// its run (Run, RunSettings.Digest) and of its activations file; Load
// refuses a batch of another run, or a JSON file and an activations file
// that do not belong together.
type DirCheckpoint struct {
	Dir string
	Run string // the run's digest; "" skips the check
}

// batchFile is a checkpointed batch's JSON file.
type batchFile struct {
	Run         string                `json:"run_digest"`
	MeansSHA256 string                `json:"activations_sha256"`
	Responses   []refusalkit.Response `json:"responses"`
}

func (c DirCheckpoint) paths(mode refusalkit.Mode, start int) (string, string) {
	base := filepath.Join(c.Dir, fmt.Sprintf("%s-%06d", mode, start))
	return base + ".json", base + ".f64"
}

// Save implements refusalkit.Checkpoint.
func (c DirCheckpoint) Save(mode refusalkit.Mode, start int, rs []refusalkit.Response) error {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	jsonPath, f64Path := c.paths(mode, start)
	var means bytes.Buffer
	if err := writeMeans(&means, rs); err != nil {
		return err
	}
	// Activations first: a batch counts as saved once its JSON exists.
	if err := tensorfile.WriteFileAtomic(f64Path, func(w io.Writer) error { _, err := w.Write(means.Bytes()); return err }); err != nil {
		return err
	}
	return tensorfile.WriteJSONAtomic(jsonPath, batchFile{Run: c.Run, MeansSHA256: sha256Hex(means.Bytes()), Responses: rs})
}

// Load implements refusalkit.Checkpoint.
func (c DirCheckpoint) Load(mode refusalkit.Mode, start int) ([]refusalkit.Response, bool, error) {
	jsonPath, f64Path := c.paths(mode, start)
	data, err := os.ReadFile(jsonPath)
	if os.IsNotExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var b batchFile
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, false, fmt.Errorf("checkpoint %s is corrupt or from an earlier version of refusalkit (%v): rerun with --overwrite", jsonPath, err)
	}
	if c.Run != "" && b.Run != c.Run {
		return nil, false, fmt.Errorf("checkpoint %s belongs to another run (run digest %.16s, this run %.16s): rerun with --overwrite", jsonPath, b.Run, c.Run)
	}
	raw, err := os.ReadFile(f64Path)
	if err != nil {
		return nil, false, fmt.Errorf("checkpoint %s: %v: rerun with --overwrite", f64Path, err)
	}
	if got := sha256Hex(raw); got != b.MeansSHA256 {
		return nil, false, fmt.Errorf("checkpoint %s does not go with %s (activations sha256 %.16s, recorded %.16s): rerun with --overwrite", f64Path, jsonPath, got, b.MeansSHA256)
	}
	rs := b.Responses
	if err := readMeans(bytes.NewReader(raw), rs); err != nil {
		return nil, false, fmt.Errorf("checkpoint %s: %v: rerun with --overwrite", f64Path, err)
	}
	return rs, true, nil
}

// writeMeans writes, per response, a uint32 row count and a uint32 width
// (0, 0 without activations), then the float64 values.
func writeMeans(w io.Writer, rs []refusalkit.Response) error {
	var buf []byte
	for _, r := range rs {
		width := 0
		if len(r.Means) > 0 {
			width = len(r.Means[0])
		}
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(r.Means)))
		buf = binary.LittleEndian.AppendUint32(buf, uint32(width))
		for _, row := range r.Means {
			for _, x := range row {
				buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(x))
			}
		}
	}
	_, err := w.Write(buf)
	return err
}

func readMeans(r *bytes.Reader, rs []refusalkit.Response) error {
	for i := range rs {
		var dims [2]uint32
		if err := binary.Read(r, binary.LittleEndian, &dims); err != nil {
			return fmt.Errorf("response %d: %v", i, err)
		}
		if int64(dims[0])*int64(dims[1])*8 > int64(r.Len()) {
			return fmt.Errorf("response %d: %dx%d values declared, %d bytes left", i, dims[0], dims[1], r.Len())
		}
		if dims[0] == 0 {
			continue
		}
		rs[i].Means = make([][]float64, dims[0])
		for l := range rs[i].Means {
			rs[i].Means[l] = make([]float64, dims[1])
			if err := binary.Read(r, binary.LittleEndian, rs[i].Means[l]); err != nil {
				return err
			}
		}
	}
	if r.Len() != 0 {
		return fmt.Errorf("%d trailing bytes", r.Len())
	}
	return nil
}

// RemoveCheckpoint removes dir's checkpoint once its run is saved: the
// batches first and settings.json last, so a removal cut short still
// leaves a checkpoint that --resume takes.
func RemoveCheckpoint(dir string) error {
	cp := filepath.Join(dir, PartialDir)
	entries, err := os.ReadDir(cp)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() != "settings.json" {
			if err := os.RemoveAll(filepath.Join(cp, e.Name())); err != nil {
				return err
			}
		}
	}
	return os.RemoveAll(cp)
}

// settingsFile is .partial/settings.json: what made the run's checkpoint,
// read back as a provenance record (ReadProvenance).
type settingsFile struct {
	Digest   string      `json:"run_digest"`
	Settings RunSettings `json:"settings"`
}

// CheckResumable checks that dir holds an unfinished run made with the same
// settings (naming the first that differs, with both values), or records
// the settings for a new run. A checkpoint it cannot take is a *FolderError.
func CheckResumable(dir string, settings RunSettings, resume bool) error {
	path := filepath.Join(dir, PartialDir, "settings.json")
	saved, err := ReadProvenance(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && resume:
		return folderErrorf("%s holds no interrupted run to resume: drop --resume", dir)
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return tensorfile.WriteJSONAtomic(path, settingsFile{Digest: settings.Digest(), Settings: settings})
	case err != nil && !errors.As(err, new(*invalidFileError)):
		return err
	}
	if err != nil || saved.RunDigest == "" {
		return folderErrorf("the interrupted run in %s was checkpointed by an earlier version of refusalkit (%s has no run digest): pass --overwrite to replace it", dir, path)
	}
	if saved.RunDigest == settings.Digest() {
		return nil
	}
	name, was, now := settings.FirstDifference(saved.RunSettings)
	return folderErrorf("the interrupted run in %s used other settings: %s was %s, this run has %s: resume with the same flags and files, or pass --overwrite to replace it",
		dir, name, was, now)
}
