package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/judge"
)

// The reference venv tools/setup/pyref.sh installs, and the script it runs.
const (
	defaultPython = ".cache/pyref/bin/python"
	hfScript      = "tools/reference/hf_w0.py"
)

// hfPlan is the work tools/reference/hf_w0.py does: the same as refusalkit's W0.
type hfPlan struct {
	ModelPath         string         `json:"model_path"`
	Seed              int64          `json:"seed"`
	BatchSize         int            `json:"batch_size"`
	MaxNewTokens      int            `json:"max_new_tokens"`
	EvalMaxNewTokens  int            `json:"eval_max_new_tokens"`
	Sampling          map[string]any `json:"sampling"`
	CompliantMessages []string       `json:"compliant_messages"` // one per row
	RefusalMessages   []string       `json:"refusal_messages"`
	RefusalSubstrings []string       `json:"refusal_substrings"`
	Validation        []string       `json:"validation"`
	Test              []string       `json:"test"`
	Coefficients      []float64      `json:"coefficients"`
	RefusalTokenIDs   []int32        `json:"refusal_token_ids"`
	StopTokenIDs      []int32        `json:"stop_token_ids"`
	DType             string         `json:"dtype"` // the weights' and activations' type, as refusalkit's run
}

// hfResult is the script's last line.
type hfResult struct {
	Seconds  map[string]float64 `json:"seconds"`
	Versions map[string]string  `json:"versions"`
	Threads  int                `json:"threads"`
}

// phasesOf names refusalkit's W0 seconds as the script names its own.
func phasesOf(loadS float64, x *refusalkit.Extraction, ev *refusalkit.Evaluation) map[string]float64 {
	t, e := x.Timings, ev.Summary.TimingsSeconds
	p := map[string]float64{
		"load":                    loadS,
		"generation":              t["generate_compliant"] + t["generate_refusal"],
		"activations":             t["activations"] + t["vector"],
		"layer_selection":         e["layer_selection"],
		"validation_side_effects": e["validation_side_effects"],
		"coefficient_sweep":       e["coefficient_sweep"],
	}
	p["extraction"] = p["load"] + p["generation"] + p["activations"]
	p["evaluation"] = p["layer_selection"] + p["validation_side_effects"] + p["coefficient_sweep"]
	p["total"] = p["extraction"] + p["evaluation"]
	return p
}

// runTransformers writes the plan of the W0 just run and times
// tools/reference/hf_w0.py on it, with as many torch threads as cores.
func runTransformers(python string, m *models.Model, x *refusalkit.Extraction, ev *refusalkit.Evaluation,
	xcfg refusalkit.ExtractConfig, ecfg refusalkit.EvalConfig) (*hfResult, error) {
	path, err := models.Resolve(m.Path)
	if err != nil {
		return nil, err
	}
	s := xcfg.Sampling
	plan := hfPlan{ModelPath: path, Seed: *xcfg.Seed, BatchSize: xcfg.BatchSize, MaxNewTokens: xcfg.MaxNewTokens,
		EvalMaxNewTokens:  ecfg.MaxNewTokens,
		Sampling:          map[string]any{"temperature": s.Temperature, "top_p": s.TopP, "top_k": s.TopK},
		RefusalSubstrings: judge.RefusalSubstrings, Validation: ev.Validation, Test: ev.Test,
		Coefficients: ecfg.Coefficients, RefusalTokenIDs: ev.Scores.RefusalTokens.IDs, StopTokenIDs: m.StopTokens,
		DType: models.DTypeName(m.DType())}
	for _, q := range x.Queries {
		for c := range xcfg.NCompletions {
			instr := xcfg.RefusalInstructions[xcfg.RefusalInstructionIndex(c)]
			plan.CompliantMessages = append(plan.CompliantMessages, refusalkit.UserMessage(q, refusalkit.ModeCompliant, ""))
			plan.RefusalMessages = append(plan.RefusalMessages, refusalkit.UserMessage(q, refusalkit.ModeRefusal, instr))
		}
	}
	dir, err := os.MkdirTemp("", "hf_w0")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	planFile := filepath.Join(dir, "plan.json")
	js, err := json.Marshal(plan)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(planFile, js, 0o644); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "bench: transformers W0: %s %s\n", python, hfScript)
	cmd := exec.Command(python, hfScript, "--plan", planFile, "--threads", fmt.Sprint(runtime.NumCPU()))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", python, hfScript, err)
	}
	var last string
	for sc := bufio.NewScanner(&out); sc.Scan(); {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			last = line
		}
	}
	var res hfResult
	if err := json.Unmarshal([]byte(last), &res); err != nil || res.Seconds["total"] == 0 {
		return nil, fmt.Errorf("%s printed no result line (last line %q)", hfScript, last)
	}
	return &res, nil
}

// printSideBySide prints each phase's seconds for transformers and refusalkit and their ratio.
func printSideBySide(r report, m *models.Model, scale float64) {
	fmt.Printf("\nW0 (scale %g), %s, %s on both sides, %d cores: transformers %s (torch %s, %d threads) and refusalkit (%s); each phase the minimum of %d runs per side, alternating which goes first\n\n",
		scale, m.Alias(), r.DType, runtime.NumCPU(), r.HFVersions["transformers"], r.HFVersions["torch"], r.HFThreads, r.Backend, r.Rounds)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "phase\ttransformers s\trefusalkit s\tratio\t\n")
	for _, p := range []string{"load", "generation", "activations", "extraction", "layer_selection",
		"validation_side_effects", "coefficient_sweep", "evaluation", "total"} {
		hf, rk := r.HFPhases[p], r.Phases[p]
		ratio := "-" // refusalkit's activations are captured during generation: no phase of their own
		if rk >= 0.05 {
			ratio = fmt.Sprintf("%.2fx", hf/rk)
		}
		fmt.Fprintf(w, "%s\t%.1f\t%.1f\t%s\t\n", p, hf, rk, ratio)
	}
	w.Flush()
}
