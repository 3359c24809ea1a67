package models

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
)

// devicesTolerance bounds the logits' and captured means' difference from
// one device: the split runs the same float32 arithmetic, but the
// all-reduce after O and after down adds the devices' partial sums in a
// different order than one matmul does (a few ulps of values of order 1–10).
const devicesTolerance = 1e-4

// TestDevicesMatchOneDevice splits the tiny random model and the family
// checkpoints over 2 and 4 devices: the first-token logits and the
// captured means match one device's within devicesTolerance and the
// greedy replies are identical; each device holds about 1/N of the split
// weights. Shapes that do not divide are refused before loading.
func TestDevicesMatchOneDevice(t *testing.T) {
	backend, err := NewBackend("xla:cpu")
	if err != nil {
		t.Skipf("needs the XLA CPU plugin: %v", err)
	}
	if backend.NumDevices() < 4 {
		t.Skipf("the XLA CPU plugin has %d devices, want 4", backend.NumDevices())
	}
	names, paths := []string{"tiny-random"}, map[string]string{"tiny-random": TinyRandomModel}
	for _, fc := range familyCases(t) {
		names = append(names, fc.Name)
		paths[fc.Name] = filepath.Join("..", fc.HF)
	}
	prompts := []string{"Tell me a story about a dragon.", "How do I bake bread?"}
	for _, name := range names {
		path := paths[name]
		t.Run(name, func(t *testing.T) {
			one, err := LoadWith(path, backend, LoadOptions{DType: dtypes.Float32})
			if err != nil {
				t.Fatal(err)
			}
			defer one.Close()
			opts := GenerateOptions{MaxNewTokens: 8, Capture: true, IgnoreStop: true}
			ids := rawIDs(t, one, prompts)
			want, err := one.GenerateIDs(ids, opts)
			if err != nil {
				t.Fatal(err)
			}
			wantLogits := firstLogits(t, one, ids)
			for _, n := range []int{2, 4} {
				c := one.Config
				if c.NumHeads%n != 0 || c.FFNDim%n != 0 {
					_, err := LoadWith(path, backend, LoadOptions{DType: dtypes.Float32, Devices: n})
					if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "divide") {
						t.Errorf("%d devices with %d heads, ffn %d: got %v, want a one-line refusal", n, c.NumHeads, c.FFNDim, err)
					}
					continue
				}
				m, err := LoadWith(path, backend, LoadOptions{DType: dtypes.Float32, Devices: n})
				if err != nil {
					t.Fatalf("%d devices: %v", n, err)
				}
				got, err := m.GenerateIDs(ids, opts)
				if err != nil {
					m.Close()
					t.Fatalf("%d devices: %v", n, err)
				}
				gotLogits := firstLogits(t, m, ids)
				logitDiff := maxAbsDiff32(wantLogits, gotLogits)
				meanDiff := 0.0
				for i := range prompts {
					if !slices.Equal(want.Tokens[i], got.Tokens[i]) {
						t.Errorf("%d devices, prompt %d: greedy reply %v, one device %v", n, i, got.Tokens[i], want.Tokens[i])
					}
					for l := range want.Means[i] {
						for d, v := range want.Means[i][l] {
							meanDiff = max(meanDiff, math.Abs(v-got.Means[i][l][d]))
						}
					}
				}
				if logitDiff > devicesTolerance || meanDiff > devicesTolerance {
					t.Errorf("%d devices: logits differ by %.3g, captured means by %.3g from one device (tolerance %g)", n, logitDiff, meanDiff, devicesTolerance)
				}
				total := one.WeightBytesPerDevice()[0]
				per := m.WeightBytesPerDevice()
				// The split weights alone: each device should hold exactly 1/N of them.
				var splitOne, splitPer int64
				for i, spec := range m.layout.weights {
					if !spec.IsReplicated() {
						splitOne += int64(one.weightList[i].Memory())
						splitPer += int64(m.shards[0][i].Memory())
					}
				}
				if splitPer*int64(n) != splitOne {
					t.Errorf("%d devices: each holds %d bytes of the %d bytes of split weights", n, splitPer, splitOne)
				}
				t.Logf("%d devices (kv split %v): max logit diff %.3g, max mean diff %.3g; weight bytes per device %v of %d (%.2f; split weights %d of %d each, replicated %d)",
					n, c.NumKVHeads%n == 0, logitDiff, meanDiff, per, total, float64(per[0])/float64(total), splitPer, splitOne, per[0]-splitPer)
				if len(per) != n || per[0] >= total {
					t.Errorf("%d devices hold %v bytes of weights each, one device %d", n, per, total)
				}
				m.Close()
			}
		})
	}
}

// rawIDs tokenizes the prompts as raw text: the family checkpoints have
// no chat template.
func rawIDs(t *testing.T, m *Model, prompts []string) [][]int32 {
	t.Helper()
	var ids [][]int32
	for _, p := range prompts {
		p, err := m.EncodeRaw(p)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p)
	}
	return ids
}

// firstLogits runs the prompts' prefill and returns the first reply token's logits.
func firstLogits(t *testing.T, m *Model, ids [][]int32) []float32 {
	t.Helper()
	longest := 0
	for _, p := range ids {
		longest = max(longest, len(p))
	}
	s, err := m.newSession(ids, bucket(longest, promptBucket), GenerateOptions{MaxNewTokens: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	rowOf := make([]int, len(ids))
	for i := range rowOf {
		rowOf[i] = i
	}
	logits, err := s.prefill(rowOf, ids, GenerateOptions{MaxNewTokens: 1})
	if err != nil {
		t.Fatal(err)
	}
	return logits
}

// TestDevicesBundled runs the bundled model (SmolLM2-135M: 9 heads, 3 KV
// heads, MLP 1536) over 3 devices, the only count it divides into on a
// 4-device backend, and checks that 2 is refused before loading.
func TestDevicesBundled(t *testing.T) {
	if _, err := Resolve(DefaultModel); err != nil {
		t.Skip(err)
	}
	backend, err := NewBackend("xla:cpu")
	if err != nil || backend.NumDevices() < 3 {
		t.Skipf("needs the XLA CPU plugin with 3 devices: %v", err)
	}
	if _, err := LoadWith(DefaultModel, backend, LoadOptions{Devices: 2}); err == nil || !strings.Contains(err.Error(), "9 attention heads") {
		t.Errorf("2 devices: got %v, want a refusal naming the 9 heads", err)
	}
	one, err := LoadWith(DefaultModel, backend, LoadOptions{DType: dtypes.Float32})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	m, err := LoadWith(DefaultModel, backend, LoadOptions{DType: dtypes.Float32, Devices: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	prompts := []string{"Tell me a story about a dragon.", "How do I bake bread?"}
	opts := GenerateOptions{MaxNewTokens: 12, Capture: true}
	want, err := one.Generate(prompts, opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Generate(prompts, opts)
	if err != nil {
		t.Fatal(err)
	}
	meanDiff := 0.0
	for i := range prompts {
		if !slices.Equal(want.Tokens[i], got.Tokens[i]) {
			t.Errorf("prompt %d: 3 devices reply %q, one device %q", i, got.Text[i], want.Text[i])
		}
		for l := range want.Means[i] {
			for d, v := range want.Means[i][l] {
				meanDiff = max(meanDiff, math.Abs(v-got.Means[i][l][d]))
			}
		}
	}
	var ids [][]int32
	for _, p := range prompts {
		_, p, err := m.EncodePrompt(p)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p)
	}
	logitDiff := maxAbsDiff32(firstLogits(t, one, ids), firstLogits(t, m, ids))
	// The real model's residual stream reaches values in the hundreds
	// (SmolLM2's massive activations): the tolerance is relative to that.
	if logitDiff > 1e-3 || meanDiff > 1e-3 {
		t.Errorf("3 devices: logits differ by %.3g, captured means by %.3g from one device", logitDiff, meanDiff)
	}
	t.Logf("3 devices: replies %q; max logit diff %.3g, max mean diff %.3g; weight bytes per device %v of %d",
		got.Text, logitDiff, meanDiff, m.WeightBytesPerDevice(), one.WeightBytesPerDevice()[0])
}

// TestDevicesSweepAndCompare runs the other programs (the layer sweep's
// suffixes over the kept residual streams, the teacher-forced comparison
// over the kept clean distributions) on 2 devices against one.
func TestDevicesSweepAndCompare(t *testing.T) {
	backend, err := NewBackend("xla:cpu")
	if err != nil || backend.NumDevices() < 2 {
		t.Skipf("needs the XLA CPU plugin with 2 devices: %v", err)
	}
	c := TinyConfig().WithDType(dtypes.Float32)
	one, err := NewTiny(c, 1, backend)
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	two, err := NewTiny(c.WithDevices(2), 1, backend)
	if err != nil {
		t.Fatal(err)
	}
	defer two.Close()
	ids := rawIDs(t, one, []string{"hello there", "a longer prompt, padded"})
	vectors := make([][]float32, c.NumLayers)
	dir := make([]float32, c.DModel)
	for i := range dir {
		dir[i] = float32(math.Sin(float64(i)))
	}
	vectors[1] = dir
	reduce := func(l []float32) float64 { return float64(l[0] - l[1]) }
	type result struct{ base, steered, kl []float64 }
	run := func(m *Model) result {
		base, steered, err := m.LayerSweep(ids, vectors, 2, reduce, nil)
		if err != nil {
			t.Fatal(err)
		}
		cmp, err := m.Compare(ids, []int{1, 1}, ForwardOptions{Steer: []Steering{{Layer: 1, Vector: dir, Coeff: 2}}})
		if err != nil {
			t.Fatal(err)
		}
		return result{base, steered[1], append(cmp.KL[0], cmp.KL[1]...)}
	}
	want, got := run(one), run(two)
	for name, pair := range map[string][2][]float64{"sweep base": {want.base, got.base}, "sweep steered": {want.steered, got.steered}, "compare KL": {want.kl, got.kl}} {
		for i := range pair[0] {
			if d := math.Abs(pair[0][i] - pair[1][i]); d > devicesTolerance {
				t.Errorf("%s[%d]: 2 devices %g, one device %g", name, i, pair[1][i], pair[0][i])
			}
		}
	}
}
