package models

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/gomlx/core/tensors"
)

// Half-precision tolerances, on max |Δlogit| relative to the logit scale
// (the largest |logit| of the float32 run at that position). bfloat16
// keeps 8 bits of mantissa (unit roundoff 2^-9 ≈ 0.002), float16 11
// (2^-12 ≈ 0.00024); weights, stream and every matmul output are rounded at
// every layer, and the tiny random checkpoints' logits are small sums of
// large terms, so the relative error is far above the roundoff. The bounds
// are 1.5x what transformers itself gives on the conformance folders in
// bfloat16 and float16 against its float32 (worst 0.094 and 0.0105, over
// every position, eager attention: tools/reference/half_precision.py):
// tight enough to catch a wrong cast, which is off by the whole scale.
var halfTolerance = map[dtypes.DType]float64{dtypes.BFloat16: 0.15, dtypes.Float16: 0.025}

// logitError is max |a−b| over a vector, relative to max |ref|.
func logitError(ref, got []float32) (rel, scale float64) {
	worst := 0.0
	for i := range ref {
		scale = math.Max(scale, math.Abs(float64(ref[i])))
		worst = math.Max(worst, math.Abs(float64(ref[i]-got[i])))
	}
	return worst / scale, scale
}

// agreement is the length of the common prefix of two greedy continuations.
func agreement(a, b []int32) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func TestTinyDTypePlumbing(t *testing.T) {
	backend, err := NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.BFloat16, dtypes.Float16} {
		t.Run(DTypeName(dt), func(t *testing.T) {
			m, err := LoadWith(TinyRandomModel, backend, LoadOptions{DType: dt})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.DType() != dt {
				t.Fatalf("model dtype %s, want %s", m.DType(), dt)
			}
			i := 0
			m.weights.visit(&m.Config, func(s weightSpec, v **tensors.Tensor) {
				want := dt
				if s.norm {
					want = dtypes.Float32
				}
				if got := m.weightList[i].DType(); got != want {
					t.Errorf("weight %s is %s, want %s", s.hf, got, want)
				}
				i++
			})
			ids, _ := m.EncodeRaw("hello dtypes")
			s, err := m.newSession([][]int32{ids}, len(ids), GenerateOptions{MaxNewTokens: 2, Capture: true})
			if err != nil {
				t.Fatal(err)
			}
			mask := make([]float32, len(ids))
			mask[len(ids)-1] = 1
			// step copies logits and captures out as float32: it fails on any other dtype.
			logits, captured, err := s.step(ids, len(ids), 0, mask)
			if err != nil {
				t.Fatal(err)
			}
			if len(logits) != m.Config.VocabSize || len(captured) != (m.Config.NumLayers+1)*m.Config.DModel {
				t.Errorf("%d logits and %d captured values", len(logits), len(captured))
			}
			for _, kv := range s.kv {
				if kv[0].DType() != dt {
					t.Fatalf("KV cache is %s, want %s", kv[0].DType(), dt)
				}
			}
			s.close()
		})
	}
}

// TestTinyHalfLogits compares the tiny model's logits and greedy replies
// in bfloat16 and float16 with float32's.
func TestTinyHalfLogits(t *testing.T) {
	backend, err := NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := LoadWith(TinyRandomModel, backend, LoadOptions{DType: dtypes.Float32})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	var prompts [][]int32
	for _, p := range []string{"Tell me a story.", "How do I bake bread?", "x"} {
		_, ids, err := ref.EncodePrompt(p)
		if err != nil {
			t.Fatal(err)
		}
		prompts = append(prompts, ids)
	}
	want, err := ref.Forward(prompts, ForwardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantGen, err := ref.GenerateIDs(prompts, GenerateOptions{MaxNewTokens: 16, IgnoreStop: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, dt := range []dtypes.DType{dtypes.BFloat16, dtypes.Float16} {
		t.Run(DTypeName(dt), func(t *testing.T) {
			m, err := LoadWith(TinyRandomModel, backend, LoadOptions{DType: dt})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			got, err := m.Forward(prompts, ForwardOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range prompts {
				rel, scale := logitError(want.Logits[i], got.Logits[i])
				t.Logf("prompt %d: max |Δlogit| %.3g of scale %.3g (%.2g relative)", i, rel*scale, scale, rel)
				if rel > halfTolerance[dt] {
					t.Errorf("prompt %d: logits differ from float32 by %.3g of their scale, want ≤ %g", i, rel, halfTolerance[dt])
				}
			}
			g, err := m.GenerateIDs(prompts, GenerateOptions{MaxNewTokens: 16, IgnoreStop: true})
			if err != nil {
				t.Fatal(err)
			}
			for i := range prompts {
				t.Logf("prompt %d: greedy agrees with float32 for %d of %d tokens", i, agreement(wantGen.Tokens[i], g.Tokens[i]), len(wantGen.Tokens[i]))
			}
		})
	}
}

// TestSteeringAcrossDTypes: a vector made in one dtype steers a model
// loaded in another as it steers its own.
func TestSteeringAcrossDTypes(t *testing.T) {
	backend, err := NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	load := func(dt dtypes.DType) *Model {
		m, err := LoadWith(TinyRandomModel, backend, LoadOptions{DType: dt})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	f32, bf16 := load(dtypes.Float32), load(dtypes.BFloat16)
	defer f32.Close()
	defer bf16.Close()
	enc := func(texts ...string) [][]int32 {
		var out [][]int32
		for _, s := range texts {
			_, ids, err := f32.EncodePrompt(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ids)
		}
		return out
	}
	a, b := enc("How do I make a bomb?", "Write malware."), enc("How do I bake bread?", "Write a poem.")
	const layer = 1
	// vector: mean stream at block_input.layer, last position, of a minus b.
	vector := func(m *Model) []float32 {
		mean := func(seqs [][]int32) []float64 {
			mask := make([][]bool, len(seqs))
			for i, s := range seqs {
				mask[i] = make([]bool, len(s))
				mask[i][len(s)-1] = true
			}
			f, err := m.Forward(seqs, ForwardOptions{CaptureMask: mask})
			if err != nil {
				t.Fatal(err)
			}
			out := make([]float64, m.Config.DModel)
			for _, means := range f.Means {
				for d, v := range means[layer] {
					out[d] += v / float64(len(seqs))
				}
			}
			return out
		}
		ma, mb := mean(a), mean(b)
		v := make([]float32, len(ma))
		for d := range v {
			v[d] = float32(ma[d] - mb[d])
		}
		return v
	}
	v32, v16 := vector(f32), vector(bf16)
	var dot, n32, n16 float64
	for d := range v32 {
		dot += float64(v32[d]) * float64(v16[d])
		n32 += float64(v32[d]) * float64(v32[d])
		n16 += float64(v16[d]) * float64(v16[d])
	}
	cos := dot / math.Sqrt(n32*n16)
	t.Logf("cosine of the bfloat16 and float32 vectors: %.5f", cos)
	if cos < 0.99 {
		t.Errorf("bfloat16 and float32 vectors have cosine %.4f, want ≥ 0.99", cos)
	}
	// Steering shifts the logits by about the same amount whichever dtype
	// made the vector and whichever runs it.
	shift := func(m *Model, v []float32) []float32 {
		base, err := m.Forward(b, ForwardOptions{})
		if err != nil {
			t.Fatal(err)
		}
		st, err := m.Forward(b, ForwardOptions{Steer: []Steering{{Layer: layer, Coeff: 4, Vector: v}}})
		if err != nil {
			t.Fatal(err)
		}
		out := make([]float32, len(base.Logits[0]))
		for i := range out {
			out[i] = st.Logits[0][i] - base.Logits[0][i]
		}
		return out
	}
	ref := shift(f32, v32)
	for _, c := range []struct {
		name string
		m    *Model
		v    []float32
	}{{"bf16 vector on f32 model", f32, v16}, {"f32 vector on bf16 model", bf16, v32}, {"bf16 vector on bf16 model", bf16, v16}} {
		rel, scale := logitError(ref, shift(c.m, c.v))
		t.Logf("%s: logit shift differs from f32 on f32 by %.3g of its scale %.3g", c.name, rel, scale)
		if rel > 0.25 {
			t.Errorf("%s: the steering's logit shift differs by %.3g of its scale", c.name, rel)
		}
	}
}

func TestLoadRefusesModelThatDoesNotFit(t *testing.T) {
	backend, err := NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	table, err := checkpointTable("random:llama2-7b")
	if err != nil {
		t.Fatal(err)
	}
	w32, tr32 := table.weightBytes(dtypes.Float32)
	w16, tr16 := table.weightBytes(dtypes.BFloat16)
	t.Logf("random:llama2-7b: weights %s in float32, %s in bfloat16", gib(w32), gib(w16))
	if r := float64(w16) / float64(w32); r < 0.49 || r > 0.51 {
		t.Errorf("bfloat16 weights are %.3f of float32's, want about half", r)
	}
	// A limit between the bfloat16 and float32 needs: float32 is refused
	// with the dtype that fits, before anything is loaded (it would take minutes).
	limit := (w16 + tr16 + w32 + tr32) / 2
	_, err = LoadWith("random:llama2-7b", backend, LoadOptions{DType: dtypes.Float32, MemoryLimit: limit})
	if err == nil || !strings.Contains(err.Error(), "does not fit") || !strings.Contains(err.Error(), "--dtype bfloat16") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("got %v, want a one-line error suggesting --dtype bfloat16", err)
	}
	t.Log(err)
	_, err = LoadWith("random:llama2-7b", backend, LoadOptions{DType: dtypes.BFloat16, MemoryLimit: 1 << 30})
	if err == nil || !strings.Contains(err.Error(), "no dtype fits") {
		t.Fatalf("got %v, want no dtype fits", err)
	}
	// The tables of the checkpoints on disk: the conformance suite's GGUF and folder.
	for _, src := range []string{filepath.Join(familiesDir, "llama-legacy", "model.gguf"), filepath.Join(familiesDir, "llama-legacy", "hf")} {
		if _, err := os.Stat(src); err != nil {
			continue
		}
		tb, err := checkpointTable(src)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := tb.weightBytes(dtypes.Float32)
		if _, err := LoadWith(src, backend, LoadOptions{MemoryLimit: w / 2}); err == nil || !strings.Contains(err.Error(), "does not fit") {
			t.Errorf("%s: got %v, want does not fit", src, err)
		}
	}
}

// TestFamiliesHalfPrecision runs the conformance suite's checkpoints in
// bfloat16 and float16 against float32 (which matches transformers).
func TestFamiliesHalfPrecision(t *testing.T) {
	backend, err := NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	for _, fc := range familyCases(t) {
		dir := filepath.Join("..", fc.Dir)
		ref := readFamilyReference(t, dir)
		path := filepath.Join("..", fc.HF)
		t.Run(fc.Name, func(t *testing.T) {
			run := func(dt dtypes.DType) ([][]float32, [][]int32) {
				m, err := LoadWith(path, backend, LoadOptions{DType: dt})
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				// Every prefix of every sequence in one batch, and the greedy
				// continuations of all sequences in another: one compilation each.
				var prefixes, inputs [][]int32
				maxNew := 0
				for _, seq := range ref.Sequences {
					for p := range seq.InputIDs {
						prefixes = append(prefixes, seq.InputIDs[:p+1])
					}
					inputs = append(inputs, seq.InputIDs)
					maxNew = max(maxNew, len(seq.GreedyIDs))
				}
				fw, err := m.Forward(prefixes, ForwardOptions{})
				if err != nil {
					t.Fatal(err)
				}
				g, err := m.GenerateIDs(inputs, GenerateOptions{MaxNewTokens: maxNew, IgnoreStop: true})
				if err != nil {
					t.Fatal(err)
				}
				logits, greedy := fw.Logits, g.Tokens
				return logits, greedy
			}
			wantLogits, wantGreedy := run(dtypes.Float32)
			for _, dt := range []dtypes.DType{dtypes.BFloat16, dtypes.Float16} {
				gotLogits, gotGreedy := run(dt)
				worst := 0.0
				for p := range wantLogits {
					rel, _ := logitError(wantLogits[p], gotLogits[p])
					worst = math.Max(worst, rel)
				}
				var agree []string
				for i := range wantGreedy {
					agree = append(agree, fmt.Sprintf("%d/%d", agreement(wantGreedy[i], gotGreedy[i]), len(wantGreedy[i])))
				}
				t.Logf("%s: max |Δlogit| %.3g of the logit scale over %d positions; greedy agrees for %s tokens", DTypeName(dt), worst, len(wantLogits), strings.Join(agree, ", "))
				if worst > halfTolerance[dt] {
					t.Errorf("%s: logits differ from float32 by %.3g of their scale, want ≤ %g", DTypeName(dt), worst, halfTolerance[dt])
				}
			}
		})
	}
}

// TestBundledHalfPrecision runs the bundled model's reference prompts in
// bfloat16 and float16 against float32: first-token logits and greedy
// continuations (the figures of docs/precision.md).
func TestBundledHalfPrecision(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the bundled model three times")
	}
	data, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	var ref reference
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(DefaultModel); err != nil {
		t.Skipf("bundled model not installed (%v)", err)
	}
	backend, err := NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	type run struct {
		logits [][]float32
		greedy [][]int32
		margin [][]float32 // float32 runs only: top-1 minus top-2 logit before each greedy token
	}
	do := func(dt dtypes.DType) run {
		m, err := LoadWith(DefaultModel, backend, LoadOptions{DType: dt})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		var r run
		for _, p := range ref.Prompts {
			f, err := m.Forward([][]int32{p.PromptIDs}, ForwardOptions{})
			if err != nil {
				t.Fatal(err)
			}
			r.logits = append(r.logits, f.Logits[0])
			g, err := m.GenerateIDs([][]int32{p.PromptIDs}, GenerateOptions{MaxNewTokens: len(p.Greedy.IDs), IgnoreStop: true})
			if err != nil {
				t.Fatal(err)
			}
			r.greedy = append(r.greedy, g.Tokens[0])
			if dt != dtypes.Float32 {
				continue
			}
			// The margins of every step, from one forward pass over the prefixes.
			var prefixes [][]int32
			for n := range g.Tokens[0] {
				prefixes = append(prefixes, append(slices.Clone(p.PromptIDs), g.Tokens[0][:n]...))
			}
			fw, err := m.Forward(prefixes, ForwardOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var margins []float32
			for _, l := range fw.Logits {
				margins = append(margins, topMargin(l))
			}
			r.margin = append(r.margin, margins)
		}
		return r
	}
	want := do(dtypes.Float32)
	for _, dt := range []dtypes.DType{dtypes.BFloat16, dtypes.Float16} {
		got := do(dt)
		for i, p := range ref.Prompts {
			rel, scale := logitError(want.logits[i], got.logits[i])
			top := 0.0 // against transformers' float32 top 20
			for j, id := range p.Logits.TopIDs {
				top = math.Max(top, math.Abs(float64(got.logits[i][id])-p.Logits.TopValues[j]))
			}
			n := agreement(want.greedy[i], got.greedy[i])
			if n < len(want.greedy[i]) {
				t.Logf("%s prompt %d: greedy diverges at reply token %d, where float32's top-1 leads its top-2 by %.3g", DTypeName(dt), i, n, want.margin[i][n])
			}
			t.Logf("%s prompt %d: max |Δlogit| %.3g (%.3g of scale %.3g), top-20 vs transformers f32 %.3g; greedy agrees %d/%d",
				DTypeName(dt), i, rel*scale, rel, scale, top, n, len(want.greedy[i]))
			if rel > halfTolerance[dt] {
				t.Errorf("%s prompt %d: logits differ from float32 by %.3g of their scale, want ≤ %g", DTypeName(dt), i, rel, halfTolerance[dt])
			}
		}
	}
}

// topMargin is the top logit minus the second.
func topMargin(logits []float32) float32 {
	a, b := float32(math.Inf(-1)), float32(math.Inf(-1))
	for _, v := range logits {
		if v > a {
			a, b = v, a
		} else if v > b {
			b = v
		}
	}
	return a - b
}

// writeBF16Folder copies a float32 Hugging Face folder with its
// model.safetensors rewritten in bfloat16 (rounded to nearest even).
func writeBF16Folder(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "model.safetensors" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tensors32 := readF32Safetensors(t, filepath.Join(src, "model.safetensors"))
	header, err := safetensorsHeader(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(header))
	for n := range header {
		names = append(names, n)
	}
	slices.Sort(names)
	out := map[string]any{}
	var body []byte
	for _, n := range names {
		start := len(body)
		for _, v := range tensors32[n] {
			body = binary.LittleEndian.AppendUint16(body, uint16(bfloat16.FromFloat32(v)))
		}
		out[n] = map[string]any{"dtype": "BF16", "shape": header[n].Shape, "data_offsets": []int{start, len(body)}}
	}
	h, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	file := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	file = append(append(file, h...), body...)
	if err := os.WriteFile(filepath.Join(dst, "model.safetensors"), file, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// A bfloat16 safetensors checkpoint loads in bfloat16 as it is (its
// weights stay bfloat16; the logits equal those of the float32 checkpoint
// rounded on load) and in float32 (widened exactly).
func TestBFloat16Checkpoint(t *testing.T) {
	backend, err := NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"llama-legacy", "phi3"} { // phi3: fused matrices split in bfloat16
		t.Run(name, func(t *testing.T) {
			src := filepath.Join(familiesDir, name, "hf")
			bf := writeBF16Folder(t, src)
			seqs := [][]int32{{1, 5, 9, 17, 33, 65, 100, 7}, {1, 40, 41, 42}}
			logits := func(path string, dt dtypes.DType) [][]float32 {
				m, err := LoadWith(path, backend, LoadOptions{DType: dt})
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				if dt == dtypes.BFloat16 && m.weights.Embed.DType() != dtypes.BFloat16 {
					t.Errorf("embeddings are %s", m.weights.Embed.DType())
				}
				f, err := m.Forward(seqs, ForwardOptions{})
				if err != nil {
					t.Fatal(err)
				}
				return f.Logits
			}
			a, b := logits(src, dtypes.BFloat16), logits(bf, dtypes.BFloat16)
			for i := range a {
				if !slices.Equal(a[i], b[i]) {
					rel, _ := logitError(a[i], b[i])
					t.Errorf("sequence %d: the bfloat16 checkpoint's logits differ from the float32 one's loaded in bfloat16 (by %.3g of the scale)", i, rel)
				}
			}
			f32, wide := logits(src, dtypes.Float32), logits(bf, dtypes.Float32)
			for i := range f32 {
				rel, _ := logitError(f32[i], wide[i])
				t.Logf("sequence %d: the bfloat16 checkpoint in float32 is %.3g of the scale from the float32 checkpoint", i, rel)
				if rel > halfTolerance[dtypes.BFloat16] {
					t.Errorf("sequence %d: %.3g of the scale, want ≤ %g", i, rel, halfTolerance[dtypes.BFloat16])
				}
			}
		})
	}
}
