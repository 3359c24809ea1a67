package models

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// newTinyForTest builds the tiny random model on the pure-Go backend, which
// every machine has, so these structural tests run everywhere.
func newTinyForTest(t *testing.T, cfg Config) *Model {
	t.Helper()
	b, err := NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewTiny(cfg, 1, b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func maxAbsDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

func maxAbsDiff32(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

var tinyPrompts = []string{"hello", "a much longer prompt, to force left padding of the first one"}

// Capture during generation must equal the mean from a separate forward
// pass over prompt + reply, masked to the reply tokens.
func TestCaptureDuringGenerationMatchesForward(t *testing.T) {
	m := newTinyForTest(t, TinyConfig())
	g, err := m.Generate(tinyPrompts, GenerateOptions{MaxNewTokens: 12, Sampling: Sampling{Temperature: 1}, Seed: 3, Capture: true})
	if err != nil {
		t.Fatal(err)
	}
	var seqs [][]int32
	var masks [][]bool
	for i, p := range tinyPrompts {
		_, ids, _ := m.EncodePrompt(p)
		reply := g.ReplyIDs(i)
		if len(reply) == 0 {
			t.Fatalf("row %d: empty reply", i)
		}
		seq := append(append([]int32{}, ids...), reply...)
		mask := make([]bool, len(seq))
		for j := len(ids); j < len(seq); j++ {
			mask[j] = true
		}
		seqs, masks = append(seqs, seq), append(masks, mask)
	}
	f, err := m.Forward(seqs, ForwardOptions{CaptureMask: masks})
	if err != nil {
		t.Fatal(err)
	}
	for i := range seqs {
		if len(g.Means[i]) != m.Config.NumLayers+1 {
			t.Fatalf("row %d: %d boundaries captured, want %d", i, len(g.Means[i]), m.Config.NumLayers+1)
		}
		for l := range g.Means[i] {
			if d := maxAbsDiff(g.Means[i][l], f.Means[i][l]); d > 1e-4 {
				t.Errorf("row %d boundary %d: generation capture differs from forward capture by %g (> 1e-4)", i, l, d)
			}
		}
	}
}

// Left padding must not change a row's result: a prompt alone and the same
// prompt padded inside a batch give the same logits and greedy reply.
func TestBatchingDoesNotChangeResults(t *testing.T) {
	m := newTinyForTest(t, TinyConfig())
	alone, err := m.Generate(tinyPrompts[:1], GenerateOptions{MaxNewTokens: 8})
	if err != nil {
		t.Fatal(err)
	}
	batched, err := m.Generate(tinyPrompts, GenerateOptions{MaxNewTokens: 8})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := batched.Tokens[0], alone.Tokens[0]; !equalIDs(got, want) {
		t.Errorf("greedy reply in a batch %v differs from alone %v", got, want)
	}
}

func equalIDs(a, b []int32) bool { return slices.Equal(a, b) }

// allPositions masks every position of every sequence.
func allPositions(seqs [][]int32) [][]bool {
	masks := make([][]bool, len(seqs))
	for i, s := range seqs {
		masks[i] = make([]bool, len(s))
		for j := range masks[i] {
			masks[i][j] = true
		}
	}
	return masks
}

func promptIDs(t *testing.T, m *Model, prompts []string) [][]int32 {
	var out [][]int32
	for _, p := range prompts {
		_, ids, err := m.EncodePrompt(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ids)
	}
	return out
}

// Adding a zero vector must change no logit.
func TestZeroSteeringChangesNothing(t *testing.T) {
	m := newTinyForTest(t, TinyConfig())
	ids := promptIDs(t, m, tinyPrompts)
	base, err := m.Forward(ids, ForwardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	zero := make([]float32, m.Config.DModel)
	for layer := range m.Config.NumLayers {
		st, err := m.Forward(ids, ForwardOptions{Steer: []Steering{{Layer: layer, Coeff: 1, Vector: zero}}})
		if err != nil {
			t.Fatal(err)
		}
		for i := range ids {
			if d := maxAbsDiff32(base.Logits[i], st.Logits[i]); d != 0 {
				t.Errorf("layer %d row %d: zero steering moved logits by %g", layer, i, d)
			}
		}
	}
}

func randomVector(d int, seed int) []float32 {
	v := make([]float32, d)
	for i := range v {
		v[i] = float32(math.Sin(float64(i*7+seed*13))) * 0.5
	}
	return v
}

// Steering at layer l adds c·v to the captured stream entering block l, and
// leaves the boundaries before it untouched: the hook sits at the right block.
func TestSteeringSitsAtItsBlock(t *testing.T) {
	m := newTinyForTest(t, TinyConfig())
	ids := promptIDs(t, m, tinyPrompts)
	masks := allPositions(ids)
	base, err := m.Forward(ids, ForwardOptions{CaptureMask: masks})
	if err != nil {
		t.Fatal(err)
	}
	v := randomVector(m.Config.DModel, 1)
	const coeff = 2.5
	for layer := range m.Config.NumLayers {
		st, err := m.Forward(ids, ForwardOptions{CaptureMask: masks, Steer: []Steering{{Layer: layer, Coeff: coeff, Vector: v}}})
		if err != nil {
			t.Fatal(err)
		}
		for i := range ids {
			for l := 0; l <= layer; l++ {
				want := append([]float64{}, base.Means[i][l]...)
				if l == layer {
					for d := range want {
						want[d] += coeff * float64(v[d])
					}
				}
				if d := maxAbsDiff(want, st.Means[i][l]); d > 1e-4 {
					t.Errorf("steer layer %d, row %d, boundary %d: off by %g", layer, i, l, d)
				}
			}
			if d := maxAbsDiff(base.Means[i][layer+1], st.Means[i][layer+1]); d < 1e-3 {
				t.Errorf("steer layer %d: boundary %d unchanged, the steering did not propagate", layer, layer+1)
			}
		}
	}
}

// Steering at layer 0 equals adding the vector to every embedding row by
// hand (untied head, so the output projection stays the same).
func TestSteeringLayer0EqualsEditedEmbeddings(t *testing.T) {
	cfg := TinyConfig()
	cfg.TiedEmbeddings = false
	m := newTinyForTest(t, cfg)
	ids := promptIDs(t, m, tinyPrompts)
	v := randomVector(cfg.DModel, 2)
	steered, err := m.Forward(ids, ForwardOptions{Steer: []Steering{{Layer: 0, Coeff: 1.5, Vector: v}}})
	if err != nil {
		t.Fatal(err)
	}
	edited := newTinyForTest(t, cfg)
	emb := edited.weights.Embed
	data, _ := copyFlat(emb)
	for r := 0; r < cfg.VocabSize; r++ {
		for d := range cfg.DModel {
			data[r*cfg.DModel+d] += 1.5 * v[d]
		}
	}
	setFlat(t, edited, data)
	byHand, err := edited.Forward(ids, ForwardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range ids {
		if d := maxAbsDiff32(steered.Logits[i], byHand.Logits[i]); d > 1e-4 {
			t.Errorf("row %d: steering at layer 0 differs from edited embeddings by %g", i, d)
		}
	}
}

// After ablation the component along the direction is ~0 at every block input.
func TestAblationRemovesDirection(t *testing.T) {
	m := newTinyForTest(t, TinyConfig())
	ids := promptIDs(t, m, tinyPrompts)
	masks := allPositions(ids)
	r := randomVector(m.Config.DModel, 3)
	var norm float64
	for _, x := range r {
		norm += float64(x * x)
	}
	for i := range r {
		r[i] /= float32(math.Sqrt(norm))
	}
	base, _ := m.Forward(ids, ForwardOptions{CaptureMask: masks})
	abl, err := m.Forward(ids, ForwardOptions{CaptureMask: masks, Ablate: r})
	if err != nil {
		t.Fatal(err)
	}
	dot := func(a []float64) float64 {
		s := 0.0
		for d := range a {
			s += a[d] * float64(r[d])
		}
		return s
	}
	for i := range ids {
		for l := range m.Config.NumLayers {
			if c := dot(abl.Means[i][l]); math.Abs(c) > 1e-5 {
				t.Errorf("row %d block %d input: component %g along the ablated direction", i, l, c)
			}
		}
		if math.Abs(dot(base.Means[i][1])) < 1e-4 {
			t.Errorf("row %d: the unablated stream has no component along r; the test proves nothing", i)
		}
	}
}

// Rows sharing a prompt are prefilled once and fan out; each must still get
// what it would get alone (same seed stream), captures included.
func TestFanOutMatchesSeparateRows(t *testing.T) {
	m := newTinyForTest(t, TinyConfig())
	ids := promptIDs(t, m, []string{"shared prompt", "other"})
	rows := [][]int32{ids[0], ids[0], ids[1], ids[0]}
	opts := GenerateOptions{MaxNewTokens: 10, Sampling: Sampling{Temperature: 1, TopK: 20}, Seed: 9, RowSeeds: []uint64{1, 2, 3, 4}, Capture: true}
	all, err := m.GenerateIDs(rows, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range rows {
		one := opts
		one.RowSeeds = []uint64{opts.RowSeeds[i]}
		alone, err := m.GenerateIDs([][]int32{p}, one)
		if err != nil {
			t.Fatal(err)
		}
		if !equalIDs(all.Tokens[i], alone.Tokens[0]) {
			t.Errorf("row %d: %v in the fanned-out batch, %v alone", i, all.Tokens[i], alone.Tokens[0])
		}
		for l := range alone.Means[0] {
			if d := maxAbsDiff(all.Means[i][l], alone.Means[0][l]); d > 1e-4 {
				t.Errorf("row %d boundary %d: capture differs by %g", i, l, d)
			}
		}
	}
	if equalIDs(all.Tokens[0], all.Tokens[1]) {
		t.Errorf("rows 0 and 1 share a prompt but have different seeds, yet sampled the same reply: fan-out copied more than the cache")
	}
}

// The lean layer sweep (one clean pass, then only the blocks from l on) must
// give the logits of a full forward pass steered at l.
func TestLayerSweepMatchesFullForward(t *testing.T) {
	cfg := TinyConfig()
	cfg.NumLayers = sweepChunk + 2 // two chunks: the second starts mid-model
	m := newTinyForTest(t, cfg)
	ids := promptIDs(t, m, append(tinyPrompts, "third prompt"))
	vectors := make([][]float32, m.Config.NumLayers)
	for l := range vectors {
		vectors[l] = randomVector(m.Config.DModel, 10+l)
	}
	// Reduce each logits row to a checksum sensitive to every value.
	reduce := func(l []float32) float64 {
		var s float64
		for i, x := range l {
			s += float64(x) * float64(i%7+1)
		}
		return s
	}
	base, steered, err := m.LayerSweep(ids, vectors, 2, reduce, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := m.Forward(ids, ForwardOptions{})
	for i := range ids {
		if d := math.Abs(base[i] - reduce(plain.Logits[i])); d > 1e-2 {
			t.Errorf("row %d: base differs by %g", i, d)
		}
	}
	for l, v := range vectors {
		full, err := m.Forward(ids, ForwardOptions{Steer: []Steering{{Layer: l, Coeff: 1, Vector: v}}})
		if err != nil {
			t.Fatal(err)
		}
		moved := 0.0
		for i := range ids {
			if d := math.Abs(steered[l][i] - reduce(full.Logits[i])); d > 1e-2 {
				t.Errorf("layer %d row %d: lean sweep differs from a full steered pass by %g", l, i, d)
			}
			moved = math.Max(moved, math.Abs(steered[l][i]-base[i]))
		}
		if moved < 0.1 { // 10× the tolerance above
			t.Errorf("layer %d: steering moved the checksum by %g at most; the test proves nothing", l, moved)
		}
	}
}

// Rows that stop early leave the batch (compaction); the rows left must get
// exactly what they get in a batch run to its end, each with its own
// steering, and the compacted run must process fewer positions.
func TestCompactionMatchesFullBatch(t *testing.T) {
	m := newTinyForTest(t, TinyConfig())
	// Random weights rarely pick one given token; make every 8th byte a stop
	// token so that rows end at different steps.
	for id := int32(0); id < 256; id += 8 {
		m.StopTokens = append(m.StopTokens, id)
	}
	ids := promptIDs(t, m, []string{"first", "second prompt", "third"})
	var rows [][]int32
	var steer [][]Steering
	for i := range 8 {
		rows = append(rows, ids[i%len(ids)])
		v := make([]float32, m.Config.DModel)
		v[i] = 1
		steer = append(steer, []Steering{{Layer: i % m.Config.NumLayers, Coeff: 0.5, Vector: v}})
	}
	opts := GenerateOptions{MaxNewTokens: 24, Sampling: Sampling{Temperature: 1}, Seed: 5, Capture: true, SteerRows: steer}
	compacted, err := m.GenerateIDs(rows, opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.Naive = true
	full, err := m.GenerateIDs(rows, opts)
	if err != nil {
		t.Fatal(err)
	}
	lengths := map[int]bool{}
	for i := range rows {
		lengths[len(full.Tokens[i])] = true
		if !equalIDs(compacted.Tokens[i], full.Tokens[i]) || compacted.Stopped[i] != full.Stopped[i] {
			t.Errorf("row %d: %v (stopped %v) compacted, %v (stopped %v) in the full batch", i,
				compacted.Tokens[i], compacted.Stopped[i], full.Tokens[i], full.Stopped[i])
			continue
		}
		for l := range full.Means[i] {
			if d := maxAbsDiff(compacted.Means[i][l], full.Means[i][l]); d > 1e-4 {
				t.Errorf("row %d boundary %d: capture differs by %g", i, l, d)
			}
		}
	}
	if len(lengths) < 3 {
		t.Fatalf("replies have only %d distinct lengths: the test needs rows that end at different steps", len(lengths))
	}
	if compacted.TokensProcessed >= full.TokensProcessed {
		t.Errorf("compaction processed %d positions, the full batch %d: no row left the batch", compacted.TokensProcessed, full.TokensProcessed)
	}
}

// Generation runs one shared program whatever it asks for (capture,
// steering, neither), so evaluation compiles nothing that extraction has not
// already compiled at the same shapes; and it gives what the lean program,
// with only the inputs asked for, gives.
func TestGenerationSharesOneProgram(t *testing.T) {
	m := newTinyForTest(t, TinyConfig())
	ids := promptIDs(t, m, tinyPrompts)
	v := randomVector(m.Config.DModel, 3)
	runs := []GenerateOptions{
		{MaxNewTokens: 8, Capture: true},                                      // extraction
		{MaxNewTokens: 8, Steer: []Steering{{Layer: 1, Coeff: 2, Vector: v}}}, // evaluation
		{MaxNewTokens: 8},
	}
	shared := make([]*Generation, len(runs))
	for i, opts := range runs {
		var err error
		if shared[i], err = m.GenerateIDs(ids, opts); err != nil {
			t.Fatal(err)
		}
	}
	var steps []string
	for name := range m.programs {
		if strings.HasPrefix(name, "step") {
			steps = append(steps, name)
		}
	}
	if len(steps) != 1 {
		t.Errorf("generation compiled %d step programs, want 1 shared: %v", len(steps), steps)
	}
	for i, opts := range runs {
		opts.Lean = true
		lean, err := m.GenerateIDs(ids, opts)
		if err != nil {
			t.Fatal(err)
		}
		for r := range ids {
			if !equalIDs(shared[i].Tokens[r], lean.Tokens[r]) {
				t.Errorf("run %d row %d: %v with the shared program, %v with the lean one", i, r, shared[i].Tokens[r], lean.Tokens[r])
			}
			if opts.Capture {
				for l := range lean.Means[r] {
					if d := maxAbsDiff(shared[i].Means[r][l], lean.Means[r][l]); d > 1e-5 {
						t.Errorf("run %d row %d boundary %d: capture differs by %g", i, r, l, d)
					}
				}
			} else if shared[i].Means != nil {
				t.Errorf("run %d: means returned without Capture", i)
			}
		}
	}
}
