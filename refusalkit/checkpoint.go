package refusalkit

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
)

// PartialDir is the folder inside a run folder that holds the checkpoint of
// an unfinished run; it is removed when the run completes.
const PartialDir = ".partial"

// Checkpoint stores finished generation batches so that an interrupted run
// can resume without regenerating them.
type Checkpoint interface {
	// Load returns the batch of mode starting at row start, if it was saved.
	Load(mode Mode, start int) ([]Response, bool, error)
	// Save records a finished batch.
	Save(mode Mode, start int, rs []Response) error
}

// DirCheckpoint keeps batches as files in dir: the responses as JSON and
// their captured activations as raw float64, each written atomically, so a
// batch is either fully there or absent.
type DirCheckpoint struct{ Dir string }

func (c DirCheckpoint) paths(mode Mode, start int) (string, string) {
	base := filepath.Join(c.Dir, fmt.Sprintf("%s-%06d", mode, start))
	return base + ".json", base + ".f64"
}

// Save implements Checkpoint.
func (c DirCheckpoint) Save(mode Mode, start int, rs []Response) error {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	jsonPath, f64Path := c.paths(mode, start)
	// Activations first: a batch counts as saved once its JSON exists.
	if err := WriteFileAtomic(f64Path, func(w io.Writer) error { return writeMeans(w, rs) }); err != nil {
		return err
	}
	return WriteJSONAtomic(jsonPath, rs)
}

// Load implements Checkpoint.
func (c DirCheckpoint) Load(mode Mode, start int) ([]Response, bool, error) {
	jsonPath, f64Path := c.paths(mode, start)
	data, err := os.ReadFile(jsonPath)
	if os.IsNotExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var rs []Response
	if err := json.Unmarshal(data, &rs); err != nil {
		return nil, false, fmt.Errorf("checkpoint %s is corrupt (%v): rerun with --overwrite", jsonPath, err)
	}
	raw, err := os.ReadFile(f64Path)
	if err != nil {
		return nil, false, fmt.Errorf("checkpoint %s: %v: rerun with --overwrite", f64Path, err)
	}
	if err := readMeans(bytes.NewReader(raw), rs); err != nil {
		return nil, false, fmt.Errorf("checkpoint %s: %v: rerun with --overwrite", f64Path, err)
	}
	return rs, true, nil
}

// writeMeans writes, per response, a uint32 row count and a uint32 width
// (0, 0 without activations), then the float64 values.
func writeMeans(w io.Writer, rs []Response) error {
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

func readMeans(r *bytes.Reader, rs []Response) error {
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

// CheckResumable checks that dir holds an unfinished run made with the same
// settings, or records the settings for a new run. settings is any JSON value.
func CheckResumable(dir string, settings any, resume bool) error {
	path := filepath.Join(dir, PartialDir, "settings.json")
	want, err := json.Marshal(settings)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	switch {
	case os.IsNotExist(err) && resume:
		return fmt.Errorf("%s holds no interrupted run to resume: drop --resume", dir)
	case os.IsNotExist(err):
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return WriteFileAtomic(path, func(w io.Writer) error { _, err := w.Write(want); return err })
	case err != nil:
		return err
	}
	var a, b any
	_ = json.Unmarshal(data, &a)
	_ = json.Unmarshal(want, &b)
	if !reflect.DeepEqual(a, b) {
		return fmt.Errorf("the interrupted run in %s used other settings (%s): resume with the same flags, or pass --overwrite", dir, path)
	}
	return nil
}
