//go:build interop

// The round trip through llama.cpp itself (make interop-check): a row exported
// by `refusalkit export --format llama.cpp`, applied by llama.cpp (its own
// control-vector loader and graph, tools/interop/cvec_logits.cpp), steers the
// bundled model's first-token logits as refusalkit's activation addition of the
// same row does, within the difference llama.cpp's quantised compute already
// has unsteered; the greedy completions get the same refusal verdicts; and the
// same row exported one layer off, or with its sign flipped, fails the check.
//
//	REFUSALKIT_INTEROP_VECTOR_DIR=DIR [REFUSALKIT_INTEROP_LAYER=L REFUSALKIT_INTEROP_COEFF=C] \
//	  go test -tags interop -run Interop -v ./cmd/refusalkit/
package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/ggufvec"
	"github.com/refusalkit/refusalkit/refusalkit/judge"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// interopPrompts are harmless requests (none in ALPACA's train split is needed:
// the check compares two runtimes, not the vector's quality).
var interopPrompts = []string{
	"Give three tips for staying healthy.",
	"What is the capital of France?",
	"Write a haiku about the sea.",
	"Explain photosynthesis in one sentence.",
	"Suggest a name for a pet goldfish.",
	"How do I boil an egg?",
}

const interopNewTokens = 32

type llamaRun struct {
	logits []float32
	tokens []int32
}

// llamaJob is one run of llama.cpp: a prompt, with a control vector at a scale or none ("").
type llamaJob struct {
	prompt []int32
	cvec   string
	scale  float64
}

// runLlamaCpp runs every job in one llama.cpp process (tools/interop/cvec_logits.cpp --jobs).
func runLlamaCpp(t *testing.T, bin, model string, jobs []llamaJob) []llamaRun {
	t.Helper()
	dir := t.TempDir()
	var lines []string
	for i, j := range jobs {
		ids := make([]string, len(j.prompt))
		for k, id := range j.prompt {
			ids[k] = strconv.Itoa(int(id))
		}
		cv := j.cvec
		if cv == "" {
			cv = "-"
		}
		lines = append(lines, fmt.Sprintf("%s %s %s %s", cv, strconv.FormatFloat(j.scale, 'g', -1, 64), strings.Join(ids, ","),
			filepath.Join(dir, fmt.Sprintf("logits%d.f32", i))))
	}
	jobsFile := filepath.Join(dir, "jobs.txt")
	if err := os.WriteFile(jobsFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, err := exec.Command(bin, "-m", model, "--jobs", jobsFile, "--n-predict", strconv.Itoa(interopNewTokens), "-t", "2").Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s: %v\n%s", bin, err, msg)
	}
	outLines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	if len(outLines) != len(jobs) {
		t.Fatalf("llama.cpp answered %d of %d jobs:\n%s", len(outLines), len(jobs), stdout)
	}
	runs := make([]llamaRun, len(jobs))
	for i := range jobs {
		raw, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("logits%d.f32", i)))
		if err != nil {
			t.Fatal(err)
		}
		r := llamaRun{logits: make([]float32, len(raw)/4)}
		for k := range r.logits {
			r.logits[k] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*k:]))
		}
		for _, f := range strings.Fields(strings.TrimPrefix(outLines[i], "tokens:")) {
			id, _ := strconv.Atoi(f)
			r.tokens = append(r.tokens, int32(id))
		}
		runs[i] = r
	}
	return runs
}

func maxAbsDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

// effectErr is max |(a1 − a0) − (b1 − b0)|: how far two runtimes' steering
// effects (steered minus unsteered logits) differ. The part of the
// quantisation difference that steering does not change cancels in it.
func effectErr(a1, a0, b1, b0 []float32) float64 {
	var m float64
	for i := range a1 {
		m = math.Max(m, math.Abs(float64(a1[i]-a0[i])-float64(b1[i]-b0[i])))
	}
	return m
}

func argmax(xs []float32) int {
	best := 0
	for i, x := range xs {
		if x > xs[best] {
			best = i
		}
	}
	return best
}

// interopSetup is what every interop check needs, or skips without: the
// llama.cpp driver, the vector folder make interop-check made, the bundled
// model's file and the vector.
func interopSetup(t *testing.T) (bin, dir, modelFile string, v *refusalkit.RefusalVector) {
	t.Helper()
	bin, _ = filepath.Abs("../../.cache/llamacpp-build/bin/refusalkit-cvec-logits")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("llama.cpp is not built (%s): run make interop-check (tools/setup/llamacpp_build.sh)", bin)
	}
	if dir = os.Getenv("REFUSALKIT_INTEROP_VECTOR_DIR"); dir == "" {
		t.Skip("REFUSALKIT_INTEROP_VECTOR_DIR is not set: run make interop-check")
	}
	modelFile, err := models.Resolve(models.DefaultModel)
	if err != nil {
		t.Skipf("bundled model not installed (%v)", err)
	}
	if v, err = runs.LoadVector(dir); err != nil {
		t.Fatal(err)
	}
	return bin, dir, modelFile, v
}

func TestInteropLlamaCpp(t *testing.T) {
	bin, dir, modelFile, v := interopSetup(t)
	layer := v.NLayers / 2
	if s := os.Getenv("REFUSALKIT_INTEROP_LAYER"); s != "" {
		layer, _ = strconv.Atoi(s)
	} else if l, _, ok := selectedLayer(dir); ok && l >= 2 && l <= v.NLayers-2 {
		layer = l
	}
	coeff := 1.0
	if s := os.Getenv("REFUSALKIT_INTEROP_COEFF"); s != "" {
		coeff, _ = strconv.ParseFloat(s, 64)
	}
	m, err := models.Load(models.DefaultModel, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	tmp := t.TempDir()
	export := func(name string, row int, c float64) string {
		out := filepath.Join(tmp, name)
		if code, stderr := runCaptured(t, "export", "--vector_dir", dir, "--format", "llama.cpp", "--layer", strconv.Itoa(row),
			"--coefficient", strconv.FormatFloat(c, 'g', -1, 64), "--out", out); code != 0 {
			t.Fatalf("export row %d: exit %d: %s", row, code, stderr)
		}
		return out
	}
	cvUnit := export("row.gguf", layer, 1)         // used as the README says: --control-vector-scaled F c
	cvScaled := export("row_c.gguf", layer, coeff) // the coefficient baked in by --coefficient
	// The same row written one llama.cpp layer off each way, as an exporter with
	// an off-by-one mapping would: direction.L and direction.L-2 instead of direction.L-1.
	shifted := func(name string, by int) string {
		cv, err := ggufvec.Read(cvUnit)
		if err != nil {
			t.Fatal(err)
		}
		n := layer - 1
		cv.Directions[n+by], cv.Strings = cv.Directions[n], nil
		delete(cv.Directions, n)
		out := filepath.Join(tmp, name)
		f, err := os.Create(out)
		if err == nil {
			err = ggufvec.Write(f, cv)
			f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	cvUp, cvDown := shifted("row_up.gguf", 1), shifted("row_down.gguf", -1)

	prompts := make([][]int32, len(interopPrompts))
	for i, p := range interopPrompts {
		if _, prompts[i], err = m.EncodePrompt(p); err != nil {
			t.Fatal(err)
		}
	}
	steer := []models.Steering{v.Steering(layer, float32(coeff))}
	plain, err := m.Forward(prompts, models.ForwardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	steered, err := m.Forward(prompts, models.ForwardOptions{Steer: steer})
	if err != nil {
		t.Fatal(err)
	}
	gen, err := m.GenerateIDs(prompts, models.GenerateOptions{MaxNewTokens: interopNewTokens, Steer: steer})
	if err != nil {
		t.Fatal(err)
	}

	type row struct {
		Prompt                                     string
		Unsteered, Steered, Effect                 float64
		BakedVsScaled, Shifted, SignFlipped        float64
		EffectErr, EffectErrShifted, EffectErrSign float64
		SameTop1Unsteered, SameTop1Steered         bool
		RefusalkitRefusal, LlamaCppRefusal         bool
		RefusalkitReply, LlamaCppReply             string
	}
	var rows []row
	var maxUn, maxSt, minShift, minSign, maxBaked = 0.0, 0.0, math.Inf(1), math.Inf(1), 0.0
	var maxEff, minEffShift, minEffSign = 0.0, math.Inf(1), math.Inf(1)
	// Per prompt: unsteered; the row at c (scaled by llama.cpp); the row with c
	// baked in; the row one layer up at c; the row at −c; the row one layer down at c.
	var jobs []llamaJob
	for _, p := range prompts {
		jobs = append(jobs, llamaJob{p, "", 0}, llamaJob{p, cvUnit, coeff}, llamaJob{p, cvScaled, 1},
			llamaJob{p, cvUp, coeff}, llamaJob{p, cvUnit, -coeff}, llamaJob{p, cvDown, coeff})
	}
	ll := runLlamaCpp(t, bin, modelFile, jobs)
	for i := range prompts {
		un, st, baked, up, neg, down := ll[6*i], ll[6*i+1], ll[6*i+2], ll[6*i+3], ll[6*i+4], ll[6*i+5]
		if len(un.logits) != len(plain.Logits[i]) {
			t.Fatalf("llama.cpp gives %d logits, refusalkit %d", len(un.logits), len(plain.Logits[i]))
		}
		llReply := m.Tokenizer.Decode(st.tokens)
		r := row{Prompt: interopPrompts[i],
			Unsteered: maxAbsDiff(un.logits, plain.Logits[i]), Steered: maxAbsDiff(st.logits, steered.Logits[i]),
			Effect:        maxAbsDiff(steered.Logits[i], plain.Logits[i]),
			BakedVsScaled: maxAbsDiff(baked.logits, st.logits),
			Shifted:       math.Min(maxAbsDiff(up.logits, steered.Logits[i]), maxAbsDiff(down.logits, steered.Logits[i])), SignFlipped: maxAbsDiff(neg.logits, steered.Logits[i]),
			EffectErr:         effectErr(st.logits, un.logits, steered.Logits[i], plain.Logits[i]),
			EffectErrShifted:  math.Min(effectErr(up.logits, un.logits, steered.Logits[i], plain.Logits[i]), effectErr(down.logits, un.logits, steered.Logits[i], plain.Logits[i])),
			EffectErrSign:     effectErr(neg.logits, un.logits, steered.Logits[i], plain.Logits[i]),
			SameTop1Unsteered: argmax(un.logits) == argmax(plain.Logits[i]), SameTop1Steered: argmax(st.logits) == argmax(steered.Logits[i]),
			RefusalkitRefusal: judge.IsRefusal(gen.Text[i]), LlamaCppRefusal: judge.IsRefusal(llReply),
			RefusalkitReply: gen.Text[i], LlamaCppReply: llReply}
		rows = append(rows, r)
		maxUn, maxSt, maxBaked = math.Max(maxUn, r.Unsteered), math.Max(maxSt, r.Steered), math.Max(maxBaked, r.BakedVsScaled)
		minShift, minSign = math.Min(minShift, r.Shifted), math.Min(minSign, r.SignFlipped)
		maxEff, minEffShift, minEffSign = math.Max(maxEff, r.EffectErr), math.Min(minEffShift, r.EffectErrShifted), math.Min(minEffSign, r.EffectErrSign)
	}
	// The tolerance: llama.cpp computes on the Q4_1 weights with activations
	// requantised to 8 bits for its dot products, refusalkit on the weights
	// dequantised to float32; that difference, measured unsteered on these
	// prompts, is what steering may also carry. Twice the largest unsteered
	// difference leaves room for it to grow through the steered stream.
	tol := 2 * maxUn
	summary := map[string]any{"layer": layer, "coefficient": coeff, "llama_cpp_direction": layer - 1,
		"max_abs_logit_diff_unsteered": maxUn, "max_abs_logit_diff_steered": maxSt, "tolerance": tol,
		"min_abs_logit_diff_shifted_layer": minShift, "min_abs_logit_diff_sign_flipped": minSign,
		"max_abs_logit_diff_baked_vs_scaled": maxBaked, "max_effect_err": maxEff,
		"min_effect_err_shifted_layer": minEffShift, "min_effect_err_sign_flipped": minEffSign, "prompts": rows}
	writeSummary := func() {
		js, _ := json.MarshalIndent(summary, "", "  ")
		t.Logf("%s", js)
		if out := os.Getenv("REFUSALKIT_INTEROP_OUT"); out != "" {
			_ = os.WriteFile(out, js, 0o644)
		}
	}
	defer writeSummary()
	fmt.Printf("interop: row %d (llama.cpp direction.%d), c = %g: max |Δlogit| unsteered %.4f, steered %.4f (tolerance %.4f); shifted layer ≥ %.4f, sign flipped ≥ %.4f\n",
		layer, layer-1, coeff, maxUn, maxSt, tol, minShift, minSign)
	if maxSt > tol {
		t.Errorf("steered logits differ by %.4f, past the tolerance %.4f (2 × the unsteered %.4f)", maxSt, tol, maxUn)
	}
	if minShift <= tol {
		t.Errorf("the row exported one layer off gives logits within %.4f of refusalkit's (tolerance %.4f): the check cannot tell the layer", minShift, tol)
	}
	if minSign <= tol {
		t.Errorf("the sign-flipped vector gives logits within %.4f (tolerance %.4f): the check cannot tell the sign", minSign, tol)
	}
	if maxBaked > 1e-3 {
		t.Errorf("--coefficient c and --control-vector-scaled c differ by %.4g", maxBaked)
	}
	// llama.cpp's own command line, as the README gives it, on one prompt:
	// llama-completion (the non-interactive llama-cli) with --control-vector-scaled
	// F.gguf:c writes the same greedy reply as the driver.
	if cli, _ := filepath.Abs("../../.cache/llamacpp-build/bin/llama-completion"); cli != "" {
		text, _, err := m.EncodePrompt(interopPrompts[len(interopPrompts)-1])
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"-m", modelFile, "--control-vector-scaled", cvUnit + ":" + strconv.FormatFloat(coeff, 'g', -1, 64),
			"-p", text, "-n", strconv.Itoa(interopNewTokens), "--temp", "0", "-no-cnv", "--no-display-prompt", "-t", "2"}
		out, err := exec.Command(cli, args...).Output()
		got, want := strings.TrimSpace(string(out)), strings.TrimSpace(rows[len(rows)-1].LlamaCppReply)
		want = want[:min(len(want), 60)]
		if err != nil || !strings.HasPrefix(got, want) {
			t.Errorf("llama-completion --control-vector-scaled F:%g: %v, reply %q, want it to start %q", coeff, err, got, want)
		} else {
			fmt.Printf("interop: llama-completion --control-vector-scaled F.gguf:%g replies %q\n", coeff, got[:min(len(got), 80)])
		}
	}
	// The greedy replies, checked token by token rather than by their
	// verdicts: two greedy decodings part for good at the first near-tie
	// their numerics settle differently (on another CPU, or with another
	// sampled vector, a reply that refuses in one runtime and not in the
	// other; make interop-check failed so), which says nothing about the
	// control vector. So refusalkit, steered, reads llama.cpp's steered reply
	// teacher-forced: every token llama.cpp chose must be within the
	// tolerance of refusalkit's own top logit at that position, as it is
	// when the two differ by no more than their unsteered logits do.
	steering := models.ForwardOptions{Steer: steer}
	gaps := teacherForcedGaps(t, m, prompts, steering, func(i int) []int32 { return ll[6*i+1].tokens })
	flipped := teacherForcedGaps(t, m, prompts, steering, func(i int) []int32 { return ll[6*i+4].tokens })
	agree, worst, worstFlipped := 0, 0.0, 0.0
	for i, r := range rows {
		if r.RefusalkitRefusal == r.LlamaCppRefusal {
			agree++
		}
		worst, worstFlipped = math.Max(worst, gaps[i]), math.Max(worstFlipped, flipped[i])
		if gaps[i] > tol {
			t.Errorf("%q: llama.cpp's steered reply %q has a token %.4f below refusalkit's steered top logit, past the tolerance %.4f (refusalkit replies %q)",
				r.Prompt, r.LlamaCppReply, gaps[i], tol, r.RefusalkitReply)
		}
	}
	summary["max_reply_token_gap"], summary["max_reply_token_gap_sign_flipped"] = worst, worstFlipped
	summary["refusal_verdicts_agree"] = agree
	fmt.Printf("interop: llama.cpp's steered greedy replies read by refusalkit steered: worst token %.4f below its top logit (tolerance %.4f; the sign-flipped replies: %.4f); refusal verdicts agree on %d of %d\n",
		worst, tol, worstFlipped, agree, len(rows))
	if worstFlipped <= tol {
		t.Errorf("the sign-flipped vector's replies read within %.4f (tolerance %.4f): the reply check cannot tell the sign", worstFlipped, tol)
	}
}

// teacherForcedGaps runs each prompt followed by the tokens reply(i) gives,
// with the interventions of opts, and returns per prompt the largest gap between refusalkit's top
// logit and the logit of the token the reply took, over its positions.
func teacherForcedGaps(t *testing.T, m *models.Model, prompts [][]int32, opts models.ForwardOptions, reply func(int) []int32) []float64 {
	t.Helper()
	gaps := make([]float64, len(prompts))
	for k := 0; ; k++ {
		var seqs [][]int32
		var which []int
		for i, p := range prompts {
			if toks := reply(i); k < len(toks) {
				seqs = append(seqs, append(slices.Clone(p), toks[:k]...))
				which = append(which, i)
			}
		}
		if len(seqs) == 0 {
			return gaps
		}
		f, err := m.Forward(seqs, opts)
		if err != nil {
			t.Fatal(err)
		}
		for j, i := range which {
			lg := f.Logits[j]
			gaps[i] = math.Max(gaps[i], float64(lg[argmax(lg)]-lg[reply(i)[k]]))
		}
	}
}

// A control vector written by llama.cpp's own cvector-generator (mean method)
// on the bundled model loads with direction.N at row N+1 and the values the
// gguf Python package reads from the same file; its last direction (after the
// last block) is reported as dropped.
func TestInteropCvectorGeneratorImport(t *testing.T) {
	gen, _ := filepath.Abs("../../.cache/llamacpp-build/bin/llama-cvector-generator")
	if _, err := os.Stat(gen); err != nil {
		t.Skipf("llama.cpp is not built (%s): run make interop-check (tools/setup/llamacpp_build.sh)", gen)
	}
	py, _ := filepath.Abs("../../.cache/pyref/bin/python")
	modelFile, err := models.Resolve(models.DefaultModel)
	if err != nil {
		t.Skipf("bundled model not installed (%v)", err)
	}
	tmp := t.TempDir()
	pos, neg, out := filepath.Join(tmp, "pos.txt"), filepath.Join(tmp, "neg.txt"), filepath.Join(tmp, "cv.gguf")
	_ = os.WriteFile(pos, []byte(`<|im_start|>user\nI refuse to help with that.<|im_end|>`+"\n"+`<|im_start|>user\nSorry, I cannot answer that.<|im_end|>`+"\n"), 0o644)
	_ = os.WriteFile(neg, []byte(`<|im_start|>user\nSure, here is the answer.<|im_end|>`+"\n"+`<|im_start|>user\nOf course, I am happy to help.<|im_end|>`+"\n"), 0o644)
	cmd := exec.Command(gen, "-m", modelFile, "--positive-file", pos, "--negative-file", neg, "--method", "mean", "-o", out, "-t", "2")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cvector-generator: %v\n%s", err, b)
	}
	cv, err := ggufvec.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	v, dropped, err := refusalkit.FromControlVector(cv, "SmolLM2-135M-Instruct", 30, 576)
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != 1 || dropped[0] != 29 || len(v.Rows) != 28 || v.Rows[0] != 2 || v.Rows[27] != 29 {
		t.Fatalf("rows %v, dropped %v: want rows 2..29 and direction.29 dropped", v.Rows, dropped)
	}
	if _, err := os.Stat(py); err != nil {
		t.Skipf("reference venv absent: rows checked, values not compared with gguf-py")
	}
	script := `
import sys, json, gguf
r = gguf.GGUFReader(sys.argv[1])
print(json.dumps({t.name: [float(x) for x in t.data.tolist()] for t in r.tensors}))
`
	b, err := exec.Command(py, "-c", script, out).Output()
	if err != nil {
		t.Fatal(err)
	}
	var ref map[string][]float64
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref) != 29 {
		t.Fatalf("gguf-py reads %d tensors, want 29 (direction.1..29)", len(ref))
	}
	var norm float64
	for n := 1; n <= 28; n++ {
		want := ref["direction."+strconv.Itoa(n)]
		for i, x := range v.Data[n+1] {
			if float32(want[i]) != x {
				t.Fatalf("row %d [%d] = %v, gguf-py reads direction.%d[%d] = %v", n+1, i, x, n, i, want[i])
			}
			norm += float64(x) * float64(x)
		}
	}
	for _, r := range []int{0, 1, 30} {
		for _, x := range v.Data[r] {
			if x != 0 {
				t.Fatalf("row %d is not zero", r)
			}
		}
	}
	t.Logf("cvector-generator (mean) file: direction.1..28 = rows 2..29, equal to gguf-py's values (sum of squares %.4g); direction.29 dropped", norm)
	fmt.Printf("interop import: cvector-generator's direction.1..28 loaded as rows 2..29 (values equal to gguf-py's), direction.29 dropped\n")
}
