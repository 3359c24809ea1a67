package abliterate

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/refusalkit/refusalkit/models"
)

const familiesDir = "../../testdata/reference/families"

// familyCheckpoint is one tiny family checkpoint in one format.
type familyCheckpoint struct {
	name, path string
	seqs       [][]int32
}

// familyCheckpoints lists every tiny family checkpoint, as a Hugging Face
// folder and as a GGUF where the case has one, with its reference token ids.
func familyCheckpoints(t *testing.T) []familyCheckpoint {
	t.Helper()
	entries, err := os.ReadDir(familiesDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []familyCheckpoint
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(familiesDir, e.Name())
		var ref struct {
			Sequences []struct {
				InputIDs []int32 `json:"input_ids"`
			} `json:"sequences"`
		}
		data, err := os.ReadFile(filepath.Join(dir, "reference.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &ref); err != nil {
			t.Fatal(err)
		}
		var seqs [][]int32
		for _, s := range ref.Sequences {
			for _, n := range []int{len(s.InputIDs) / 2, len(s.InputIDs)} { // two prefixes of each
				seqs = append(seqs, s.InputIDs[:n])
			}
		}
		out = append(out, familyCheckpoint{e.Name() + "/hf", filepath.Join(dir, "hf"), seqs})
		if _, err := os.Stat(filepath.Join(dir, "model.gguf")); err == nil {
			out = append(out, familyCheckpoint{e.Name() + "/gguf", filepath.Join(dir, "model.gguf"), seqs})
		}
	}
	return out
}

func randomDirection(d int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	v := make([]float32, d)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func unitFloat32(v []float32) []float32 {
	r, _ := unit(v)
	out := make([]float32, len(r))
	for i, x := range r {
		out[i] = float32(x)
	}
	return out
}

func load(t *testing.T, path string) *models.Model {
	t.Helper()
	m, err := models.LoadWith(path, nil, models.LoadOptions{DType: dtypes.Float32})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func logits(t *testing.T, m *models.Model, seqs [][]int32, opts models.ForwardOptions) [][]float32 {
	t.Helper()
	res, err := m.Forward(seqs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res.Logits
}

func maxDiff(a, b [][]float32) float64 {
	d := 0.0
	for i := range a {
		for j := range a[i] {
			d = math.Max(d, math.Abs(float64(a[i][j]-b[i][j])))
		}
	}
	return d
}

// The written checkpoint, loaded back, gives the logits of the source with
// the direction ablated at run time (every block input, attention output
// and MLP output), for every family and both formats; families with
// post-norms are refused with the one-line reason instead.
func TestAbliteratedMatchesRuntimeAblation(t *testing.T) {
	for _, c := range familyCheckpoints(t) {
		t.Run(c.name, func(t *testing.T) {
			ck, err := models.ReadCheckpoint(c.path)
			if err != nil {
				t.Fatal(err)
			}
			dir := randomDirection(ck.Config.DModel, 11)
			out := filepath.Join(t.TempDir(), "abliterated")
			rec, err := Write(c.path, out, Options{Direction: dir})
			if f := ck.Config.Family(); ck.GGUF && f.GGUFTiedHead && !f.PostNorms {
				want := "llama.cpp reads a " + f.GGUFArchs[0] + " GGUF's LM head from token_embd.weight"
				if err == nil || !strings.HasPrefix(err.Error(), want) {
					t.Fatalf("tied %s GGUF: got %v, want an error starting %q", f.GGUFArchs[0], err, want)
				}
				return
			}
			if ck.Config.Family().PostNorms {
				want := "model family " + ck.Config.Family().ModelTypes[0] + " normalises each block's output before the residual add (post-norms)"
				if err == nil || !strings.HasPrefix(err.Error(), want) {
					t.Fatalf("post-norm family: got %v, want an error starting %q", err, want)
				}
				if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("a refused abliteration left %s behind", out)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			src := load(t, c.path)
			want := logits(t, src, c.seqs, models.ForwardOptions{Ablate: unitFloat32(dir)})
			clean := logits(t, src, c.seqs, models.ForwardOptions{})
			path := out
			if ck.GGUF {
				path = filepath.Join(out, rec.Model)
			}
			got := logits(t, load(t, path), c.seqs, models.ForwardOptions{})
			d, moved := maxDiff(got, want), maxDiff(clean, want)
			t.Logf("max |logit - runtime ablation| %.2g (ablation moves the logits by %.2g); leftover ratio %.2g", d, moved, rec.MaxLeftover)
			if d > 1e-4 {
				t.Errorf("abliterated logits differ from runtime ablation by %g, want ≤ 1e-4", d)
			}
			if moved < 1e-2 {
				t.Errorf("ablation moves the logits by only %g: the check cannot fail", moved)
			}
			perBlock := 2
			if ck.Config.OutBias {
				perBlock++
			}
			if ck.Config.MLPBias {
				perBlock++
			}
			if n := 1 + perBlock*ck.Config.NumLayers; len(rec.Tensors) != n {
				t.Errorf("%d tensors rewritten, want %d", len(rec.Tensors), n)
			}
			if ck.Config.TiedEmbeddings != (rec.Untied != "") {
				t.Errorf("tied %v, but the record says untied %q", ck.Config.TiedEmbeddings, rec.Untied)
			}
			if rec.MaxLeftover > 1e-5 {
				t.Errorf("a float32 rewrite left %g of the component behind", rec.MaxLeftover)
			}
		})
	}
}

// What cannot be written is refused before a byte is: an existing folder
// without Overwrite (and replaced with it), a direction of another length,
// the other format than the source's.
func TestWriteRefuses(t *testing.T) {
	src := filepath.Join(familiesDir, "llama-legacy", "hf")
	ck, err := models.ReadCheckpoint(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := randomDirection(ck.Config.DModel, 3)
	out := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	var exists *ExistsError
	if _, err := Write(src, out, Options{Direction: dir}); !errors.As(err, &exists) {
		t.Fatalf("existing folder: got %v", err)
	}
	if _, err := Write(src, out, Options{Direction: dir, Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "model.safetensors")); err != nil {
		t.Fatalf("--overwrite did not write the model: %v", err)
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o755 {
		t.Errorf("the written folder has mode %v, want rwxr-xr-x as any folder the user makes", st.Mode().Perm())
	}
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Direction: dir[:5]}, "the direction has 5 values but hf has d_model 48: give a direction made with this model"},
		{Options{Direction: make([]float32, len(dir))}, "the direction has norm 0: it must be finite and non-zero"},
		{Options{Direction: dir, Format: FormatGGUF}, "--format gguf needs a GGUF source; " + ck.Path + " is a Hugging Face folder: write it as one, then convert the written folder with llama.cpp's convert_hf_to_gguf.py"},
		{Options{Direction: dir, Format: "onnx"}, `--format "onnx": use hf or gguf`},
	} {
		fresh := filepath.Join(t.TempDir(), "fresh")
		_, err := Write(src, fresh, tc.opts)
		if err == nil || err.Error() != tc.want {
			t.Errorf("got %v, want %q", err, tc.want)
		}
		if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a refused write created %s", fresh)
		}
	}
}

// The written folder, loaded back by refusalkit, gives the logits that
// transformers gives for the same abliteration done independently in
// PyTorch (testdata/reference/abliterated, tools/reference/make_abliterated.py).
// With REFUSALKIT_ABLITERATED_OUT=DIR the folders are kept in DIR/<case>
// for that script's --check_written, which loads them in transformers.
func TestAbliteratedMatchesTransformers(t *testing.T) {
	refs, _ := filepath.Glob("../../testdata/reference/abliterated/*.json")
	if len(refs) == 0 {
		t.Fatal("no references in testdata/reference/abliterated: run tools/reference/make_abliterated.py")
	}
	keep := os.Getenv("REFUSALKIT_ABLITERATED_OUT")
	for _, p := range refs {
		var ref struct {
			Case      string      `json:"case"`
			Direction []float32   `json:"direction"`
			Sequences [][]int32   `json:"sequences"`
			Logits    [][]float32 `json:"logits"`
			Moved     float64     `json:"moved_by_abliteration"`
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &ref); err != nil {
			t.Fatal(err)
		}
		t.Run(ref.Case, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), ref.Case)
			if keep != "" {
				out = filepath.Join(keep, ref.Case)
			}
			if _, err := Write(filepath.Join(familiesDir, ref.Case, "hf"), out, Options{Direction: ref.Direction, Overwrite: keep != ""}); err != nil {
				t.Fatal(err)
			}
			got := logits(t, load(t, out), ref.Sequences, models.ForwardOptions{})
			d := maxDiff(got, ref.Logits)
			t.Logf("max |logit - transformers' abliteration| %.2g (abliteration moves them by %.2g)", d, ref.Moved)
			if d > 1e-4 {
				t.Errorf("logits differ from transformers' by %g, want ≤ 1e-4", d)
			}
		})
	}
}

// Why post-norm families are refused: the same rewrite of their weights
// (embeddings, o_proj, down_proj) is measurably not runtime ablation,
// because each block's output is normalised and scaled by the norm's weight
// after the projection, before the residual add.
func TestPostNormRewriteIsNotAblation(t *testing.T) {
	for _, name := range []string{"gemma2", "gemma3-text", "olmo2"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(familiesDir, name, "hf")
			ck, err := models.ReadCheckpoint(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ck.ResidualWriters(); err == nil {
				t.Fatalf("%s is not refused", name)
			}
			writers := []models.ResidualWriter{{Name: ck.EmbeddingName(), Axis: 1}}
			for i := range ck.Config.NumLayers {
				for _, n := range []string{"self_attn.o_proj", "mlp.down_proj"} {
					writers = append(writers, models.ResidualWriter{Name: fmt.Sprintf("model.layers.%d.%s.weight", i, n)})
				}
			}
			job, err := planHF(ck, writers)
			if err != nil {
				t.Fatal(err)
			}
			dir := randomDirection(ck.Config.DModel, 11)
			r, _ := unit(dir)
			out := t.TempDir()
			if err := job.write(out, r, &Record{}, nil); err != nil {
				t.Fatal(err)
			}
			seqs := familyCheckpoints(t)[0].seqs
			src := load(t, path)
			want := logits(t, src, seqs, models.ForwardOptions{Ablate: unitFloat32(dir)})
			clean := logits(t, src, seqs, models.ForwardOptions{})
			d, moved := maxDiff(logits(t, load(t, out), seqs, models.ForwardOptions{}), want), maxDiff(clean, want)
			t.Logf("rewritten weights vs runtime ablation: max |logit diff| %.3g (ablation itself moves them by %.3g)", d, moved)
			if d < 1e-2 {
				t.Errorf("the rewrite matches runtime ablation within %g: the refusal would be unfounded", d)
			}
		})
	}
}

// copyAllButWeights copies the Hugging Face folder src, but for its
// model.safetensors, into a new folder named name, and returns it with that
// file's header and bytes, for the caller to write the weights its way.
func copyAllButWeights(t *testing.T, src, name string) (string, *shard, []byte) {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(src)
	for _, e := range entries {
		if e.Name() != "model.safetensors" {
			if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	s, err := readShard(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return dst, s, raw
}

// toBF16 copies the Hugging Face folder src to a new folder with every
// tensor rounded to bfloat16, as a bf16 checkpoint is saved.
func toBF16(t *testing.T, src string) string {
	t.Helper()
	dst, s, raw := copyAllButWeights(t, src, "bf16")
	var names []string
	for n := range s.tensors {
		names = append(names, n)
	}
	slices.Sort(names)
	header := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var data []byte
	for _, n := range names {
		e := s.tensors[n]
		if e.DType != "F32" {
			t.Fatalf("%s is %s", n, e.DType)
		}
		from := len(data)
		for i := s.dataAt + e.DataOffsets[0]; i < s.dataAt+e.DataOffsets[1]; i += 4 {
			v := math.Float32frombits(binary.LittleEndian.Uint32(raw[i:]))
			data = binary.LittleEndian.AppendUint16(data, bfloat16.FromFloat32(v).Bits())
		}
		header[n] = stEntry{DType: "BF16", Shape: e.Shape, DataOffsets: [2]int64{int64(from), int64(len(data))}}
	}
	hb, _ := json.Marshal(header)
	for len(hb)%8 != 0 {
		hb = append(hb, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(hb)))
	if err := os.WriteFile(filepath.Join(dst, "model.safetensors"), append(append(out, hb...), data...), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// A bfloat16 checkpoint is written in bfloat16: the rewritten tensors are
// rounded to it, and the record shows what the rounding leaves along the
// direction (2^-8 of the component, not float32's 1e-7); the written model
// is runtime ablation of the bf16 source up to that rounding.
func TestAbliterateBF16(t *testing.T) {
	src := toBF16(t, filepath.Join(familiesDir, "qwen2", "hf"))
	ck, err := models.ReadCheckpoint(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := randomDirection(ck.Config.DModel, 5)
	out := filepath.Join(t.TempDir(), "out")
	rec, err := Write(src, out, Options{Direction: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rec.Tensors {
		if c.DType != "BF16" {
			t.Errorf("%s written as %s", c.Name, c.DType)
		}
	}
	t.Logf("leftover ratio %.3g", rec.MaxLeftover)
	if rec.MaxLeftover < 1e-5 || rec.MaxLeftover > 0.05 {
		t.Errorf("leftover ratio %g: want bfloat16's rounding, about 2^-8", rec.MaxLeftover)
	}
	seqs := familyCheckpoints(t)[0].seqs
	want := logits(t, load(t, src), seqs, models.ForwardOptions{Ablate: unitFloat32(dir)})
	d := maxDiff(logits(t, load(t, out), seqs, models.ForwardOptions{}), want)
	t.Logf("bf16: max |logit - runtime ablation| %.3g", d)
	if d > 0.1 {
		t.Errorf("bf16 abliteration is %g from runtime ablation", d)
	}
}

// reshard copies the Hugging Face folder src into two safetensors shards
// and their index, as checkpoints past a few GB are saved: the embeddings
// in the first, the rest in the second.
func reshard(t *testing.T, src string) string {
	t.Helper()
	dst, s, raw := copyAllButWeights(t, src, "sharded")
	names := [2]string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
	headers := [2]map[string]any{{"__metadata__": map[string]string{"format": "pt"}}, {"__metadata__": map[string]string{"format": "pt"}}}
	var data [2][]byte
	weightMap := map[string]string{}
	var total int64
	var tensorNames []string
	for n := range s.tensors {
		tensorNames = append(tensorNames, n)
	}
	slices.Sort(tensorNames)
	for _, n := range tensorNames {
		e := s.tensors[n]
		k := 1
		if n == "model.embed_tokens.weight" {
			k = 0
		}
		from := int64(len(data[k]))
		data[k] = append(data[k], raw[s.dataAt+e.DataOffsets[0]:s.dataAt+e.DataOffsets[1]]...)
		headers[k][n] = stEntry{DType: e.DType, Shape: e.Shape, DataOffsets: [2]int64{from, int64(len(data[k]))}}
		weightMap[n] = names[k]
		total += e.DataOffsets[1] - e.DataOffsets[0]
	}
	for k := range names {
		hb, _ := json.Marshal(headers[k])
		for len(hb)%8 != 0 {
			hb = append(hb, ' ')
		}
		out := append(binary.LittleEndian.AppendUint64(nil, uint64(len(hb))), hb...)
		if err := os.WriteFile(filepath.Join(dst, names[k]), append(out, data[k]...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	index, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": total}, "weight_map": weightMap})
	if err := os.WriteFile(filepath.Join(dst, indexFile), index, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// A sharded folder is written sharded, each shard under its own name, the
// untied head in the embeddings' shard and in the index; loaded back it is
// runtime ablation of the source.
func TestAbliterateSharded(t *testing.T) {
	src := reshard(t, filepath.Join(familiesDir, "qwen2", "hf")) // tied
	ck, err := models.ReadCheckpoint(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := randomDirection(ck.Config.DModel, 9)
	out := filepath.Join(t.TempDir(), "out")
	if _, err := Write(src, out, Options{Direction: dir}); err != nil {
		t.Fatal(err)
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	data, _ := os.ReadFile(filepath.Join(out, indexFile))
	if err := json.Unmarshal(data, &index); err != nil || index.WeightMap["lm_head.weight"] != "model-00001-of-00002.safetensors" {
		t.Errorf("index: %v, lm_head.weight in %q", err, index.WeightMap["lm_head.weight"])
	}
	seqs := familyCheckpoints(t)[0].seqs
	want := logits(t, load(t, src), seqs, models.ForwardOptions{Ablate: unitFloat32(dir)})
	if d := maxDiff(logits(t, load(t, out), seqs, models.ForwardOptions{}), want); d > 1e-4 {
		t.Errorf("sharded abliteration is %g from runtime ablation", d)
	}
}
