package abliterate

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	"github.com/gomlx/go-huggingface/models/gguf"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/refusalkit/refusalkit/models"
)

// metadataKey is the GGUF key holding the record (a JSON string).
const metadataKey = "refusalkit.abliteration"

// ggufJob rewrites a GGUF file.
type ggufJob struct {
	ck     *models.Checkpoint
	file   *gguf.File
	name   string         // the output file's name
	kvs    []byte         // the source's key-value section, our key left out
	nKV    uint64         // the number of pairs in kvs
	axis   map[string]int // the tensors to rewrite: their d_model axis
	untie  bool
	tensor []outTensor
	bytes  int64
}

// outTensor is one tensor of the output: where its bytes come from and
// how it is stored.
type outTensor struct {
	name  string
	from  gguf.TensorInfo // the source tensor
	typ   gguf.TensorType // as written
	nData int64
}

func planGGUF(ck *models.Checkpoint, writers []models.ResidualWriter, name string) (*ggufJob, error) {
	f, err := gguf.Open(ck.Path)
	if err != nil {
		return nil, fmt.Errorf("corrupt or truncated GGUF %s (%v): re-download the file", ck.Path, err)
	}
	j := &ggufJob{ck: ck, file: f, name: name, axis: map[string]int{}, untie: ck.Config.TiedEmbeddings}
	for _, w := range writers {
		j.axis[w.Name] = w.Axis
	}
	if j.kvs, j.nKV, err = rawKeyValues(ck.Path, metadataKey); err != nil {
		return nil, err
	}
	infos := slices.Clone(f.TensorInfos) // in the order of their data
	for name := range j.axis {
		if _, ok := f.GetTensorInfo(name); !ok {
			return nil, fmt.Errorf("GGUF %s: missing tensor %s", ck.Path, name)
		}
	}
	for _, ti := range infos {
		t := outTensor{name: ti.Name, from: ti, typ: ti.Type, nData: ti.NumBytes()}
		if _, ok := j.axis[ti.Name]; ok {
			t.typ, t.nData = gguf.TensorTypeF32, 4*int64(ti.NumElements())
		}
		if t.nData == 0 && ti.NumElements() > 0 {
			return nil, fmt.Errorf("GGUF %s: tensor %s has type %s, whose size refusalkit does not know: it cannot be copied", ck.Path, ti.Name, ti.Type)
		}
		j.tensor = append(j.tensor, t)
	}
	if j.untie { // the LM head keeps the source's embeddings, as stored
		e, _ := f.GetTensorInfo(ck.EmbeddingName())
		j.tensor = append(j.tensor, outTensor{name: ck.LMHeadName(), from: e, typ: e.Type, nData: e.NumBytes()})
	}
	j.bytes = int64(len(j.kvs)) + 1<<20
	for _, t := range j.tensor {
		j.bytes += t.nData + int64(f.Alignment)
	}
	return j, nil
}

func (j *ggufJob) size() int64 { return j.bytes }

func (j *ggufJob) write(out string, r []float64, rec *Record, progress func(string, int, int)) error {
	rec.Model = j.name
	if j.untie {
		rec.Untied = fmt.Sprintf("the source has no %s (its LM head is the embeddings): %s is written as the source's %s, in its own type", j.ck.LMHeadName(), j.ck.LMHeadName(), j.ck.EmbeddingName())
	}
	reader, err := gguf.NewReader(j.file)
	if err != nil {
		return err
	}
	defer reader.Close()
	f, err := os.Create(out + "/" + j.name)
	if err != nil {
		return err
	}
	defer f.Close()
	w := &countingWriter{w: bufio.NewWriterSize(f, 1<<20)}
	align := int64(j.file.Alignment)
	le := func(v any) { _ = binary.Write(w, binary.LittleEndian, v) }
	str := func(s string) { le(uint64(len(s))); _, _ = w.Write([]byte(s)) }

	_, _ = w.Write([]byte("GGUF"))
	le(j.file.Version)
	le(uint64(len(j.tensor)))
	le(j.nKV + 1)
	_, _ = w.Write(j.kvs)
	str(metadataKey)
	le(uint32(8)) // string
	str(metadataValue(rec))
	var offset int64
	for _, t := range j.tensor {
		str(t.name)
		le(uint32(len(t.from.Shape)))
		for _, d := range t.from.Shape {
			le(d)
		}
		le(uint32(t.typ))
		le(uint64(offset))
		offset += (t.nData + align - 1) / align * align
	}
	w.pad(align)
	var done int64
	for _, t := range j.tensor {
		start := w.n
		if axis, ok := j.axis[t.name]; ok {
			x, err := readFloat32(reader, t.from)
			if err != nil {
				return fmt.Errorf("GGUF %s: read tensor %s: %v", j.ck.Path, t.name, err)
			}
			_, dims := t.from.GoMLXShape()
			before, after, err := project(x, dims, axis, r, nil)
			if err != nil {
				return fmt.Errorf("tensor %s: %v", t.name, err)
			}
			rec.Tensors = append(rec.Tensors, TensorChange{Name: t.name, DType: "F32", Before: before, After: after})
			buf := make([]byte, 4*len(x))
			for i, v := range x {
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
			}
			_, _ = w.Write(buf)
		} else {
			raw, _, err := reader.ReadTensorRaw(t.from.Name)
			if err != nil {
				return fmt.Errorf("GGUF %s: read tensor %s: %v", j.ck.Path, t.from.Name, err)
			}
			_, _ = w.Write(raw)
		}
		if w.n-start != t.nData {
			return fmt.Errorf("GGUF %s: tensor %s took %d bytes, want %d", j.ck.Path, t.name, w.n-start, t.nData)
		}
		w.pad(align)
		done += t.nData
		if progress != nil {
			progress("abliterate", int(done>>20), int(j.bytes>>20))
		}
	}
	if w.err != nil {
		return w.err
	}
	if err := w.w.(*bufio.Writer).Flush(); err != nil {
		return err
	}
	return f.Sync()
}

// readFloat32 reads a tensor as float32, dequantising a quantised one as
// refusalkit's loader does.
func readFloat32(reader *gguf.Reader, ti gguf.TensorInfo) ([]float32, error) {
	switch {
	case ti.Type.IsQuantized() || ti.Type == gguf.TensorTypeF32:
		t, err := reader.ReadTensor(nil, ti.Name)
		if err != nil {
			return nil, err
		}
		return tensors.CopyFlatData[float32](t)
	}
	raw, _, err := reader.ReadTensorRaw(ti.Name)
	if err != nil {
		return nil, err
	}
	dt := map[gguf.TensorType]string{gguf.TensorTypeF16: "F16", gguf.TensorTypeBF16: "BF16"}[ti.Type]
	if dt == "" {
		return nil, fmt.Errorf("type %s: abliterate rewrites float32, float16, bfloat16 and quantised tensors", ti.Type)
	}
	x := make([]float32, len(raw)/2)
	return x, decode16(raw, dt, x)
}

type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

func (c *countingWriter) pad(align int64) {
	if r := c.n % align; r != 0 {
		_, _ = c.Write(make([]byte, align-r))
	}
}

// rawKeyValues returns the key-value section of the GGUF at path as its
// bytes, leaving out the pair named drop, with the number of pairs kept:
// keys are copied byte for byte, whatever their types.
func rawKeyValues(path, drop string) ([]byte, uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var head struct {
		Magic   [4]byte
		Version uint32
		NT, NKV uint64
	}
	if err := binary.Read(r, binary.LittleEndian, &head); err != nil || string(head.Magic[:]) != "GGUF" {
		return nil, 0, fmt.Errorf("%s is not a GGUF file: re-download it", path)
	}
	var out []byte
	kept := uint64(0)
	for range head.NKV {
		var pair []byte
		rec := &recorder{r: r, buf: &pair}
		key, err := ggufString(rec)
		if err != nil {
			return nil, 0, fmt.Errorf("GGUF %s: key-value section: %v", path, err)
		}
		if err := skipValue(rec, 0, true); err != nil {
			return nil, 0, fmt.Errorf("GGUF %s: key %s: %v", path, key, err)
		}
		if key != drop {
			out = append(out, pair...)
			kept++
		}
	}
	return out, kept, nil
}

// recorder reads from r, keeping what it reads.
type recorder struct {
	r   io.Reader
	buf *[]byte
}

func (c *recorder) Read(p []byte) (int, error) {
	n, err := io.ReadFull(c.r, p)
	*c.buf = append(*c.buf, p[:n]...)
	return n, err
}

func ggufString(r io.Reader) (string, error) {
	var n uint64
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return "", err
	}
	if n > 1<<30 {
		return "", fmt.Errorf("string of %d bytes", n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return string(b), err
}

// valueSizes are the sizes of GGUF's fixed-size value types.
var valueSizes = map[uint32]int{0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

// skipValue reads one value of type typ (read first when readType).
func skipValue(r io.Reader, typ uint32, readType bool) error {
	if readType {
		if err := binary.Read(r, binary.LittleEndian, &typ); err != nil {
			return err
		}
	}
	if n, ok := valueSizes[typ]; ok {
		_, err := io.ReadFull(r, make([]byte, n))
		return err
	}
	switch typ {
	case 8:
		_, err := ggufString(r)
		return err
	case 9:
		var head struct {
			Type  uint32
			Count uint64
		}
		if err := binary.Read(r, binary.LittleEndian, &head); err != nil {
			return err
		}
		if n, ok := valueSizes[head.Type]; ok {
			if head.Count > 1<<32 {
				return fmt.Errorf("array of %d values", head.Count)
			}
			_, err := io.ReadFull(r, make([]byte, n*int(head.Count)))
			return err
		}
		for range head.Count {
			if err := skipValue(r, head.Type, false); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown value type %d", typ)
}
