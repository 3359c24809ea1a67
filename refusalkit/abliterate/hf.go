package abliterate

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/compute/dtypes/float16"
	"github.com/refusalkit/refusalkit/models"
)

// indexFile lists a sharded checkpoint's tensors by shard.
const indexFile = "model.safetensors.index.json"

// weightFormats are other weight files a folder may hold beside its
// safetensors; copying one would ship the source's unmodified weights.
var weightFormats = []string{".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf", ".onnx"}

// stEntry is one tensor of a safetensors header.
type stEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// shard is one safetensors file of the source: its header, and where its
// data section starts.
type shard struct {
	name     string
	tensors  map[string]stEntry
	metadata map[string]string
	dataAt   int64
	size     int64
}

// hfJob rewrites a Hugging Face folder.
type hfJob struct {
	ck      *models.Checkpoint
	shards  []*shard
	index   map[string]any // the source's index, when sharded
	axis    map[string]int // the tensors to rewrite, by name: their d_model axis
	untie   bool           // write lm_head.weight as the source's embeddings
	headIn  *shard         // the shard the LM head goes into (the embeddings')
	copies  []string       // files copied as they are
	skipped []string
	bytes   int64
}

func planHF(ck *models.Checkpoint, writers []models.ResidualWriter) (*hfJob, error) {
	dir := ck.Path
	j := &hfJob{ck: ck, axis: map[string]int{}, untie: ck.Config.TiedEmbeddings}
	for _, w := range writers {
		j.axis[w.Name] = w.Axis
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var shardNames []string
	for _, e := range entries {
		name := e.Name()
		switch {
		case !e.Type().IsRegular():
			if e.IsDir() {
				j.skipped = append(j.skipped, name+"/")
			}
		case strings.HasSuffix(name, ".safetensors"):
			shardNames = append(shardNames, name)
		case name == indexFile || name == "config.json" || name == RecordFile:
		case slices.ContainsFunc(weightFormats, func(ext string) bool { return strings.HasSuffix(name, ext) }):
			j.skipped = append(j.skipped, name)
		default:
			j.copies = append(j.copies, name)
		}
	}
	if data, err := os.ReadFile(filepath.Join(dir, indexFile)); err == nil {
		if err := json.Unmarshal(data, &j.index); err != nil {
			return nil, fmt.Errorf("model folder %s: %s: %v", dir, indexFile, err)
		}
		wm, _ := j.index["weight_map"].(map[string]any)
		used := map[string]bool{}
		for _, f := range wm {
			if s, ok := f.(string); ok {
				used[s] = true
			}
		}
		for _, n := range shardNames { // as the loader reads them: the index's shards only
			if !used[n] {
				j.skipped = append(j.skipped, n)
			}
		}
		shardNames = slices.DeleteFunc(shardNames, func(n string) bool { return !used[n] })
	} else if len(shardNames) > 1 {
		return nil, fmt.Errorf("model folder %s has %d .safetensors files but no %s: keep only the model's weights, or add the index that lists its shards", dir, len(shardNames), indexFile)
	}
	if len(shardNames) == 0 {
		return nil, fmt.Errorf("model folder %s has no .safetensors weights", dir)
	}
	found := map[string]bool{}
	for _, n := range shardNames {
		s, err := readShard(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		j.shards = append(j.shards, s)
		j.bytes += s.size
		for name, e := range s.tensors {
			if _, ok := j.axis[name]; !ok {
				continue
			}
			found[name] = true
			if e.DType != "F32" && e.DType != "BF16" && e.DType != "F16" {
				return nil, fmt.Errorf("model folder %s: tensor %s has dtype %s: abliterate rewrites F32, BF16 and F16 tensors", dir, name, e.DType)
			}
			if name == ck.EmbeddingName() {
				j.headIn = s
			}
		}
	}
	for name := range j.axis {
		if !found[name] {
			return nil, fmt.Errorf("model folder %s: missing tensor %s", dir, name)
		}
	}
	if j.untie {
		e := j.headIn.tensors[ck.EmbeddingName()]
		j.bytes += e.DataOffsets[1] - e.DataOffsets[0]
	}
	for _, n := range append(slices.Clone(j.copies), "config.json") {
		if st, err := os.Stat(filepath.Join(dir, n)); err == nil {
			j.bytes += st.Size()
		}
	}
	return j, nil
}

func (j *hfJob) size() int64 { return j.bytes }

func (j *hfJob) write(out string, r []float64, rec *Record, progress func(string, int, int)) error {
	rec.Model, rec.NotCopied = ".", j.skipped
	head := j.ck.LMHeadName()
	if j.untie {
		rec.Untied = fmt.Sprintf("the source ties its LM head to the embeddings: %s is written as the source's %s and tie_word_embeddings set to false", head, j.ck.EmbeddingName())
	}
	meta := metadataValue(rec)
	var done int64
	for _, s := range j.shards {
		if err := j.writeShard(out, s, r, rec, meta, func(n int64) {
			done += n
			if progress != nil {
				progress("abliterate", int(done>>20), int(j.bytes>>20))
			}
		}); err != nil {
			return err
		}
	}
	if j.index != nil {
		if wm, ok := j.index["weight_map"].(map[string]any); ok && j.untie {
			wm[head] = j.headIn.name
			if m, ok := j.index["metadata"].(map[string]any); ok {
				if total, ok := m["total_size"].(float64); ok {
					e := j.headIn.tensors[j.ck.EmbeddingName()]
					m["total_size"] = total + float64(e.DataOffsets[1]-e.DataOffsets[0])
				}
			}
		}
		if err := writeJSON(filepath.Join(out, indexFile), j.index); err != nil {
			return err
		}
	}
	if err := j.writeConfig(out); err != nil {
		return err
	}
	for _, n := range j.copies {
		if err := copyFile(filepath.Join(j.ck.Path, n), filepath.Join(out, n)); err != nil {
			return err
		}
	}
	return nil
}

// writeShard writes source shard s into out under its own name: every
// tensor in the source's dtype, the residual writers projected, the LM head
// added when untying.
func (j *hfJob) writeShard(out string, s *shard, r []float64, rec *Record, meta string, advanced func(int64)) error {
	src, err := os.Open(filepath.Join(j.ck.Path, s.name))
	if err != nil {
		return err
	}
	defer src.Close()
	head, embed := j.ck.LMHeadName(), j.ck.EmbeddingName()
	type part struct {
		name string
		from string // the source tensor whose bytes it starts from
	}
	var parts []part
	for name := range s.tensors {
		if j.untie && name == head {
			continue // replaced by the embeddings below
		}
		parts = append(parts, part{name, name})
	}
	if j.untie && s == j.headIn {
		parts = append(parts, part{head, embed})
	}
	sort.Slice(parts, func(a, b int) bool { return parts[a].name < parts[b].name })

	header := map[string]any{}
	var offset int64
	for _, p := range parts {
		e := s.tensors[p.from]
		n := e.DataOffsets[1] - e.DataOffsets[0]
		header[p.name] = stEntry{DType: e.DType, Shape: e.Shape, DataOffsets: [2]int64{offset, offset + n}}
		offset += n
	}
	md := map[string]string{}
	for k, v := range s.metadata {
		md[k] = v
	}
	if md["format"] == "" {
		md["format"] = "pt" // transformers reads safetensors marked so
	}
	md["refusalkit.abliteration"] = meta
	header["__metadata__"] = md
	hb, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(hb)%8 != 0 {
		hb = append(hb, ' ')
	}

	f, err := os.Create(filepath.Join(out, s.name))
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	_ = binary.Write(w, binary.LittleEndian, uint64(len(hb)))
	w.Write(hb)
	for _, p := range parts {
		e := s.tensors[p.from]
		raw := make([]byte, e.DataOffsets[1]-e.DataOffsets[0])
		if _, err := src.ReadAt(raw, s.dataAt+e.DataOffsets[0]); err != nil {
			f.Close()
			return fmt.Errorf("model folder %s: read tensor %s: %v", j.ck.Path, p.from, err)
		}
		if axis, ok := j.axis[p.name]; ok {
			c, err := rewrite(raw, e.DType, e.Shape, axis, r)
			if err != nil {
				f.Close()
				return fmt.Errorf("tensor %s: %v", p.name, err)
			}
			c.Name = p.name
			rec.Tensors = append(rec.Tensors, c)
		}
		if _, err := w.Write(raw); err != nil {
			f.Close()
			return err
		}
		advanced(int64(len(raw)))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// rewrite projects r out of the little-endian tensor raw (dtype F32, BF16
// or F16) in place, rounding to its dtype.
func rewrite(raw []byte, dtype string, shape []int, axis int, r []float64) (TensorChange, error) {
	var x []float32
	var store func(float32) float32 // the value as the dtype holds it
	switch dtype {
	case "F32":
		x = make([]float32, len(raw)/4)
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case "BF16", "F16":
		x = make([]float32, len(raw)/2)
		if err := decode16(raw, dtype, x); err != nil {
			return TensorChange{}, err
		}
		store = func(v float32) float32 { return bfloat16.FromFloat32(v).Float32() }
		if dtype == "F16" {
			store = func(v float32) float32 { return float16.FromFloat32(v).Float32() }
		}
	default:
		return TensorChange{}, fmt.Errorf("dtype %s: abliterate rewrites F32, BF16 and F16", dtype)
	}
	before, after, err := project(x, shape, axis, r, store)
	if err != nil {
		return TensorChange{}, err
	}
	for i, v := range x {
		switch dtype {
		case "F32":
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
		case "BF16":
			binary.LittleEndian.PutUint16(raw[2*i:], bfloat16.FromFloat32(v).Bits()) // exact: v was rounded by store
		case "F16":
			binary.LittleEndian.PutUint16(raw[2*i:], uint16(float16.FromFloat32(v)))
		}
	}
	return TensorChange{DType: dtype, Before: before, After: after}, nil
}

// decode16 decodes little-endian bfloat16 ("BF16") or float16 ("F16") raw into x.
func decode16(raw []byte, dtype string, x []float32) error {
	for i := range x {
		b := binary.LittleEndian.Uint16(raw[2*i:])
		switch dtype {
		case "BF16":
			x[i] = bfloat16.FromBits(b).Float32()
		case "F16":
			x[i] = float16.Float16(b).Float32()
		default:
			return fmt.Errorf("dtype %s is not a 16-bit float", dtype)
		}
	}
	return nil
}

// writeConfig copies config.json, untying the embeddings when asked.
func (j *hfJob) writeConfig(out string) error {
	path := filepath.Join(j.ck.Path, "config.json")
	if !j.untie {
		return copyFile(path, filepath.Join(out, "config.json"))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	cfg["tie_word_embeddings"] = false
	if tc, ok := cfg["text_config"].(map[string]any); ok {
		tc["tie_word_embeddings"] = false
	}
	return writeJSON(filepath.Join(out, "config.json"), cfg)
}

// readShard reads a safetensors file's header.
func readShard(path string) (*shard, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil || n > 100<<20 || int64(n)+8 > st.Size() {
		return nil, fmt.Errorf("%s is not a safetensors file (bad header length): re-download it", path)
	}
	hb := make([]byte, n)
	if _, err := io.ReadFull(f, hb); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hb, &raw); err != nil {
		return nil, fmt.Errorf("%s: safetensors header: %v", path, err)
	}
	s := &shard{name: filepath.Base(path), tensors: map[string]stEntry{}, dataAt: 8 + int64(n), size: st.Size()}
	for k, v := range raw {
		if k == "__metadata__" {
			if err := json.Unmarshal(v, &s.metadata); err != nil {
				return nil, fmt.Errorf("%s: safetensors metadata: %v", path, err)
			}
			continue
		}
		var e stEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %v", path, k, err)
		}
		if e.DataOffsets[0] < 0 || e.DataOffsets[1] < e.DataOffsets[0] || s.dataAt+e.DataOffsets[1] > st.Size() {
			return nil, fmt.Errorf("%s: tensor %s lies outside the file: re-download it", path, k)
		}
		s.tensors[k] = e
	}
	return s, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
