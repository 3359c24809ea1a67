// Package tensorfile holds the file formats refusalkit writes: PyTorch's .pt
// (so refusal_vector.pt loads with torch.load; no Go library writes it), a
// strict .safetensors reader and writer, and the atomic writes every output
// file goes through.
//
// The model loader reads checkpoints with go-huggingface's safetensors
// package; vectors use this one because that reader works on a hub
// repository and uploads to a compute backend, while a vector file is one
// small float32 tensor with string metadata, read on the host and refused
// outright when its header, dtype, shape or byte range is off.
package tensorfile

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
)

// Float32Tensor is a dense row-major float32 tensor: Data holds prod(Shape) values, the last
// axis varying fastest. A scalar has an empty Shape and one value.
type Float32Tensor struct {
	Shape []int
	Data  []float32
}

// numElements returns prod(shape), or an error for negative dimensions or overflow.
func numElements(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, fmt.Errorf("shape %v has too many elements", shape)
		}
		n *= d
	}
	return n, nil
}

// Validate checks that Data holds exactly prod(Shape) values.
func (t Float32Tensor) Validate() error {
	n, err := numElements(t.Shape)
	if err != nil {
		return err
	}
	if n != len(t.Data) {
		return fmt.Errorf("shape %v needs %d values but the data has %d", t.Shape, n, len(t.Data))
	}
	return nil
}

// ptArchiveName is the folder inside the zip that holds the records. torch.save names it after
// the file; torch.load accepts any name (it takes the folder of the first record).
const ptArchiveName = "archive"

// ptAlignment is the alignment torch.save gives record data (PyTorchStreamWriter pads every
// record's local header so its data starts at a multiple of 64 bytes, which torch.load(mmap=True)
// relies on).
const ptAlignment = 64

// WritePT writes data, a row-major float32 tensor of the given shape, to w in the zip-based
// format torch.save has produced since PyTorch 1.6, so that in Python
//
//	torch.load(path, weights_only=True)
//
// returns a CPU torch.float32 tensor of that shape (with requires_grad=False). The archive holds,
// stored without compression and with each record's data aligned to 64 bytes as torch does:
//
//   - archive/data.pkl: a protocol-2 pickle of
//     torch._utils._rebuild_tensor_v2(storage, 0, shape, contiguous strides, False, OrderedDict()),
//     where storage is the persistent id ('storage', torch.FloatStorage, '0', 'cpu', numel);
//   - archive/.format_version: "1" and archive/.storage_alignment: "64", as torch 2.x writes them;
//   - archive/byteorder: "little";
//   - archive/data/0: the values as little-endian float32;
//   - archive/version: "3" (the zip serialization version torch.save writes).
//
// The pickle uses only globals that torch's weights_only unpickler allows, and is the one
// torch.save writes minus its memo (BINPUT) opcodes. Unlike torch.save, no random
// archive/.data/serialization_id is written, so the output is deterministic.
func WritePT(w io.Writer, data []float32, shape []int) error {
	t := Float32Tensor{Shape: shape, Data: data}
	if err := t.Validate(); err != nil {
		return fmt.Errorf("write .pt: %w", err)
	}
	if uint64(len(data))*4 >= math.MaxUint32 {
		return fmt.Errorf("write .pt: %d values is over 4 GiB, which needs zip64; save it as .safetensors instead", len(data))
	}
	pkl := ptPickle(shape, len(data))
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	records := []struct {
		name string
		data []byte
	}{
		{"data.pkl", pkl},
		{".format_version", []byte("1")},
		{".storage_alignment", []byte(strconv.Itoa(ptAlignment))},
		{"byteorder", []byte("little")},
		{"data/0", raw},
		{"version", []byte("3\n")},
	}
	zw := zip.NewWriter(w)
	var offset int64 // bytes written so far; archive/zip's own counter is not exported
	for _, r := range records {
		name := ptArchiveName + "/" + r.name
		extra := ptPadding(offset, len(name))
		fh := &zip.FileHeader{
			Name:               name,
			Method:             zip.Store,
			Extra:              extra,
			CRC32:              crc32.ChecksumIEEE(r.data),
			CompressedSize64:   uint64(len(r.data)),
			UncompressedSize64: uint64(len(r.data)),
			// 1980-01-01 00:00: a fixed, valid MS-DOS date, so output does not depend on the clock.
			ModifiedDate: 1<<5 | 1,
		}
		// CreateRaw writes the sizes in the local header and no data descriptor (as torch does),
		// which keeps the header size, and so the alignment computed above, exact.
		fw, err := zw.CreateRaw(fh)
		if err != nil {
			return fmt.Errorf("write .pt: %w", err)
		}
		if _, err := fw.Write(r.data); err != nil {
			return fmt.Errorf("write .pt: %w", err)
		}
		offset += zipLocalHeaderLen + int64(len(name)) + int64(len(extra)) + int64(len(r.data))
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("write .pt: %w", err)
	}
	return nil
}

// zipLocalHeaderLen is the fixed part of a zip local file header.
const zipLocalHeaderLen = 30

// ptPadding returns the local-header extra field that makes a record's data, whose header starts
// at offset and has a name of nameLen bytes, start at a multiple of ptAlignment. Like torch's
// PyTorchStreamWriter (caffe2/serialize/inline_container.cc, getPadding), it is an extra field
// with id "FB" whose payload is 'Z' bytes; it is present even when no padding is needed.
func ptPadding(offset int64, nameLen int) []byte {
	start := offset + zipLocalHeaderLen + int64(nameLen) + 4 // 4: the extra field's id and size
	pad := 0
	if m := start % ptAlignment; m != 0 {
		pad = int(ptAlignment - m)
	}
	extra := make([]byte, 4+pad)
	extra[0], extra[1] = 'F', 'B'
	binary.LittleEndian.PutUint16(extra[2:], uint16(pad))
	for i := 4; i < len(extra); i++ {
		extra[i] = 'Z'
	}
	return extra
}

// Pickle opcodes used by ptPickle (see Python's Lib/pickletools.py).
const (
	pkProto      = 0x80
	pkGlobal     = 'c'
	pkMark       = '('
	pkTuple      = 't'
	pkEmptyTuple = ')'
	pkBinUnicode = 'X'
	pkBinInt1    = 'K'
	pkBinInt2    = 'M'
	pkBinInt     = 'J'
	pkLong1      = 0x8a
	pkBinPersID  = 'Q'
	pkNewFalse   = 0x89
	pkReduce     = 'R'
	pkStop       = '.'
)

// ptPickle returns the protocol-2 pickle torch.save writes for a contiguous float32 CPU tensor:
//
//	torch._utils._rebuild_tensor_v2(
//	    persistent_load(('storage', torch.FloatStorage, '0', 'cpu', numel)),
//	    0, tuple(shape), tuple(stride), False, collections.OrderedDict())
func ptPickle(shape []int, numel int) []byte {
	var b bytes.Buffer
	global := func(module, name string) {
		b.WriteByte(pkGlobal)
		b.WriteString(module + "\n" + name + "\n")
	}
	str := func(s string) {
		b.WriteByte(pkBinUnicode)
		_ = binary.Write(&b, binary.LittleEndian, uint32(len(s)))
		b.WriteString(s)
	}
	integer := func(v int64) {
		switch {
		case v >= 0 && v < 1<<8:
			b.WriteByte(pkBinInt1)
			b.WriteByte(byte(v))
		case v >= 0 && v < 1<<16:
			b.WriteByte(pkBinInt2)
			_ = binary.Write(&b, binary.LittleEndian, uint16(v))
		case v >= math.MinInt32 && v <= math.MaxInt32:
			b.WriteByte(pkBinInt)
			_ = binary.Write(&b, binary.LittleEndian, int32(v))
		default: // LONG1: 8-byte two's complement little-endian, always enough for an int64
			b.WriteByte(pkLong1)
			b.WriteByte(8)
			_ = binary.Write(&b, binary.LittleEndian, v)
		}
	}
	tuple := func(vs []int) {
		if len(vs) == 0 {
			b.WriteByte(pkEmptyTuple)
			return
		}
		b.WriteByte(pkMark)
		for _, v := range vs {
			integer(int64(v))
		}
		b.WriteByte(pkTuple)
	}

	b.Write([]byte{pkProto, 2})
	global("torch._utils", "_rebuild_tensor_v2")
	b.WriteByte(pkMark) // arguments of _rebuild_tensor_v2
	b.WriteByte(pkMark) // persistent id of the storage
	str("storage")
	global("torch", "FloatStorage")
	str("0")   // key: the record data/0
	str("cpu") // location
	integer(int64(numel))
	b.WriteByte(pkTuple)
	b.WriteByte(pkBinPersID)
	integer(0) // storage offset
	tuple(shape)
	tuple(contiguousStrides(shape))
	b.WriteByte(pkNewFalse) // requires_grad
	global("collections", "OrderedDict")
	b.WriteByte(pkEmptyTuple)
	b.WriteByte(pkReduce) // OrderedDict(): backward hooks
	b.WriteByte(pkTuple)
	b.WriteByte(pkReduce)
	b.WriteByte(pkStop)
	return b.Bytes()
}

// contiguousStrides returns row-major strides in elements, as torch computes them for a
// contiguous tensor (a zero-sized dimension counts as 1).
func contiguousStrides(shape []int) []int {
	strides := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		strides[i] = s
		s *= max(shape[i], 1)
	}
	return strides
}

// safetensorsMaxHeader bounds the JSON header of a safetensors file (the reference
// implementation's own limit is 100 MB).
const safetensorsMaxHeader = 100 << 20

// safetensorsEntry is one tensor's entry in a safetensors header.
type safetensorsEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// WriteSafetensors writes tensors and metadata to w in the safetensors format: an 8-byte
// little-endian header length, a JSON header (tensor names, in sorted order, to dtype "F32",
// shape and byte offsets, plus "__metadata__" when metadata is not empty), padded with spaces to
// a multiple of 8 bytes, then the little-endian float32 data of each tensor in the same order.
func WriteSafetensors(w io.Writer, tensors map[string]Float32Tensor, metadata map[string]string) error {
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		if name == "__metadata__" || name == "" {
			return fmt.Errorf("write safetensors: invalid tensor name %q; use a non-empty name other than __metadata__", name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	header := make(map[string]any, len(names)+1)
	var offset int64
	for _, name := range names {
		t := tensors[name]
		if err := t.Validate(); err != nil {
			return fmt.Errorf("write safetensors: tensor %q: %w", name, err)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		end := offset + 4*int64(len(t.Data))
		header[name] = safetensorsEntry{DType: "F32", Shape: shape, DataOffsets: [2]int64{offset, end}}
		offset = end
	}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	hb, err := json.Marshal(header) // map keys are sorted, so the output is deterministic
	if err != nil {
		return fmt.Errorf("write safetensors: %w", err)
	}
	for len(hb)%8 != 0 {
		hb = append(hb, ' ')
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hb)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return fmt.Errorf("write safetensors: %w", err)
	}
	if _, err := w.Write(hb); err != nil {
		return fmt.Errorf("write safetensors: %w", err)
	}
	buf := make([]byte, 0, 64<<10)
	for _, name := range names {
		for _, v := range tensors[name].Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return fmt.Errorf("write safetensors: %w", err)
				}
				buf = buf[:0]
			}
		}
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("write safetensors: %w", err)
	}
	return nil
}

// ReadSafetensors reads a safetensors file holding float32 ("F32") tensors and returns them with
// the file's "__metadata__" (empty when absent). It checks the file before allocating: the
// header length must fit in the file and in 100 MiB, each tensor's byte range must match its
// shape and lie inside the data section, and the ranges must cover the data section exactly
// without overlapping, as the format requires. Other dtypes are an error naming the tensor.
func ReadSafetensors(path string) (map[string]Float32Tensor, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read safetensors: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("read safetensors %s: %w", path, err)
	}
	size := info.Size()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("read safetensors %s: %s; the file is not a valid safetensors file, write it again", path, fmt.Sprintf(format, args...))
	}
	var lenBuf [8]byte
	if _, err := io.ReadFull(f, lenBuf[:]); err != nil {
		return nil, nil, bad("shorter than the 8-byte header length")
	}
	hlen := binary.LittleEndian.Uint64(lenBuf[:])
	if hlen > safetensorsMaxHeader || hlen > uint64(size-8) {
		return nil, nil, bad("header length %d does not fit in the file (%d bytes) or exceeds %d MiB", hlen, size, safetensorsMaxHeader>>20)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(f, hb); err != nil {
		return nil, nil, bad("reading the header: %v", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hb, &raw); err != nil {
		return nil, nil, bad("header is not a JSON object (%v)", err)
	}
	metadata := map[string]string{}
	type entry struct {
		name string
		safetensorsEntry
	}
	var entries []entry
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &metadata); err != nil {
				return nil, nil, bad("__metadata__ is not a map of strings to strings")
			}
			continue
		}
		var e safetensorsEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, nil, bad("tensor %q: invalid entry (%v)", name, err)
		}
		entries = append(entries, entry{name, e})
	}
	dataStart := 8 + int64(hlen)
	dataLen := size - dataStart
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].DataOffsets[0] != entries[j].DataOffsets[0] {
			return entries[i].DataOffsets[0] < entries[j].DataOffsets[0]
		}
		return entries[i].name < entries[j].name
	})
	var next int64
	for _, e := range entries {
		if e.DType != "F32" {
			return nil, nil, fmt.Errorf("read safetensors %s: tensor %q has dtype %s; only F32 tensors are supported, convert it to float32", path, e.name, e.DType)
		}
		n, err := numElements(e.Shape)
		if err != nil {
			return nil, nil, bad("tensor %q: %v", e.name, err)
		}
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if begin != next || end < begin || end > dataLen {
			return nil, nil, bad("tensor %q: byte range [%d, %d) is out of place (expected to start at %d, data section is %d bytes)", e.name, begin, end, next, dataLen)
		}
		if uint64(n) > uint64(dataLen)/4 || int64(n)*4 != end-begin {
			return nil, nil, bad("tensor %q: shape %v needs %s bytes but its byte range has %d", e.name, e.Shape, strconv.FormatUint(uint64(n)*4, 10), end-begin)
		}
		next = end
	}
	if next != dataLen {
		return nil, nil, bad("tensors cover %d bytes but the data section has %d", next, dataLen)
	}
	out := make(map[string]Float32Tensor, len(entries))
	for _, e := range entries {
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		buf := make([]byte, end-begin)
		if _, err := f.ReadAt(buf, dataStart+begin); err != nil {
			return nil, nil, fmt.Errorf("read safetensors %s: tensor %q: %w", path, e.name, err)
		}
		data := make([]float32, len(buf)/4)
		for i := range data {
			data[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
		}
		shape := append([]int{}, e.Shape...)
		out[e.name] = Float32Tensor{Shape: shape, Data: data}
	}
	return out, metadata, nil
}

// WriteFileAtomic writes a file through write so that path holds either its previous content or
// the complete new content, never a partial file: write fills a temporary file in the same
// directory, which is synced to disk and then renamed over path (the directory is synced too,
// best effort). On any error the temporary file is removed and path is left untouched. The new
// file has mode 0644.
func WriteFileAtomic(path string, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
			if errors.Is(err, syscall.ENOSPC) {
				err = fmt.Errorf("%w: free some disk space and run again (extract --resume keeps the finished batches)", err)
			}
		}
	}()
	if err = write(tmp); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync() // makes the rename durable; not supported everywhere, so errors are ignored
		_ = d.Close()
	}
	return nil
}

// WriteJSONAtomic writes v as JSON to path with WriteFileAtomic: indented by two spaces, ending
// in a newline, and without escaping <, > and & (so model text stays readable, as Python's
// json.dump writes it).
func WriteJSONAtomic(path string, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil { // Encode appends the trailing newline
		return fmt.Errorf("write %s: %w", path, err)
	}
	return WriteFileAtomic(path, func(w io.Writer) error {
		_, err := w.Write(b.Bytes())
		return err
	})
}
