package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// cmdAblate measures whether the refusal vector's direction at one layer
// mediates refusal (directional ablation), and how the vector lines up with
// the reference method's direction at every layer.
func cmdAblate(args []string) error {
	fs := newFlags("ablate", "--model_path M --vector_dir DIR [flags]")
	def := refusalkit.AblateConfig{}.WithDefaults()
	modelPath := fs.String("model_path", "", "model: "+models.DefaultModel+", a .gguf file, a Hugging Face folder or hub id (required)")
	vectorDir := fs.String("vector_dir", "", "folder holding refusal_vector.safetensors, written by 'refusalkit extract' (required)")
	layer := fs.Int("layer", -1, "the vector's row whose direction is ablated (default: selected_layer of the evaluation's eval_summary.json)")
	outDir := fs.String("output_dir", "", "output folder (default: --vector_dir)")
	maxNew := fs.Int("max_new_tokens", def.MaxNewTokens, "maximum tokens to generate")
	batch := fs.Int("batch_size", def.BatchSize, "batch size for generation and the reference direction's forward passes")
	nInduced := fs.Int("n_induced", def.NInduced, "test-split instructions given behind the extraction's refusal instruction")
	direction := fs.String("direction", "vector", "what is ablated: vector (the refusal vector's row) or "+refusalkit.DirectionHarmfulHarmless+
		" (the reference method's harmful−harmless direction at its own layer, selected by steering score unless --layer; default --output_dir: VECTOR_DIR/"+refusalkit.DirectionHarmfulHarmless+")")
	overwrite := fs.Bool("overwrite", false, "replace a previous ablation in the output folder")
	backend := fs.String("backend", "", "GoMLX backend: go, xla:cpu, xla:cuda (default: $GOMLX_BACKEND, else the fastest that loads)")
	dtype := dtypeFlag(fs)
	devices := devicesFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	layerGiven := false
	fs.Visit(func(f *flag.Flag) { layerGiven = layerGiven || f.Name == "layer" })
	if _, err := models.ParseDType(*dtype); err != nil {
		return usagef("--dtype: %v", err)
	}
	if *modelPath == "" || *vectorDir == "" {
		return usagef("--model_path and --vector_dir are required (see --help)")
	}
	if st, err := os.Stat(*vectorDir); err != nil || !st.IsDir() {
		return usagef("--vector_dir %s is not a folder: give the folder written by `refusalkit extract`", *vectorDir)
	}
	for name, v := range map[string]int{"max_new_tokens": *maxNew, "batch_size": *batch, "n_induced": *nInduced} {
		if err := positive(name, v); err != nil {
			return err
		}
	}
	if layerGiven && *layer < 0 {
		return usagef("--layer must be 0 or more, got %d", *layer)
	}
	if *direction != "vector" && *direction != refusalkit.DirectionHarmfulHarmless {
		return usagef("--direction %q: use vector or %s", *direction, refusalkit.DirectionHarmfulHarmless)
	}
	reference := *direction == refusalkit.DirectionHarmfulHarmless
	dir := *outDir
	if dir == "" {
		dir = *vectorDir
		if reference {
			dir = filepath.Join(*vectorDir, refusalkit.DirectionHarmfulHarmless)
		}
	}

	// Check the vector, the layer and the prompts before loading the model;
	// the shape is checked against the model right after.
	x, err := readVectorDir(*vectorDir)
	if err != nil {
		return err
	}
	v := x.Vector
	layerSource := "--layer"
	var tokens refusalkit.RefusalTokens // the reference direction's layer selection
	nValidation := 0
	if reference && !layerGiven {
		var s refusalkit.EvalSummary
		if !readJSONFile(filepath.Join(*vectorDir, runs.EvalSummaryFile), &s) {
			return usagef("--direction %s needs --layer, or %s in %s for the refusal tokens that select its layer (run `refusalkit evaluate` first)",
				refusalkit.DirectionHarmfulHarmless, runs.EvalSummaryFile, *vectorDir)
		}
		tokens, nValidation = s.RefusalTokens, s.NValidationSamples
		layerSource = fmt.Sprintf("the best steering score of the %s direction on %d validation instructions disjoint from its harmless ones (refusal tokens of %s)",
			refusalkit.DirectionHarmfulHarmless, nValidation, filepath.Join(*vectorDir, runs.EvalSummaryFile))
	} else if !layerGiven {
		l, from, ok := selectedLayer(dir, *vectorDir)
		if !ok {
			return usagef("--layer is required: %s holds no %s to take the selected layer from (run `refusalkit evaluate` first, or give --layer)", *vectorDir, runs.EvalSummaryFile)
		}
		*layer, layerSource = l, "selected_layer of "+from
	}
	if reference && layerGiven && *layer > v.NLayers {
		return usagef("--layer %d is outside the direction's layers 0..%d: choose another layer", *layer, v.NLayers)
	} else if !reference {
		if _, _, err := refusalkit.AblationDirection(v, *layer); err != nil {
			if layerGiven {
				return usagef("--%v", err)
			}
			return usagef("%v (the %s)", err, layerSource)
		}
	}
	cfg := refusalkit.AblateConfig{Layer: layer, MaxNewTokens: *maxNew, BatchSize: *batch, NInduced: *nInduced,
		ParseSpecialTokens: x.Config.ParseSpecialTokens}

	harmful, induced, harmlessKL, err := refusalkit.AblationPlan(cfg, x)
	if err != nil {
		return usagef("--n_induced: %v", err)
	}
	dcfg := refusalkit.DirectionConfig{BatchSize: *batch, ParseSpecialTokens: x.Config.ParseSpecialTokens}
	_, harmless, err := refusalkit.DirectionPlan(dcfg)
	if err != nil {
		return usagef("%v", err)
	}
	if err := probeRunDir(dir); err != nil {
		return err
	}
	if err := ablateDirState(dir, *overwrite); err != nil {
		return err
	}
	m, mismatch, err := loadForVector("ablate", *modelPath, *backend, *dtype, *devices, v, cfg.MaxNewTokens)
	if err != nil {
		return err
	}
	for _, w := range mismatch {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	instruction := x.Config.WithDefaults().RefusalInstructions[0]
	messages := append([]string{}, harmful...)
	for _, s := range induced {
		messages = append(messages, refusalkit.UserMessage(s, refusalkit.ModeRefusal, instruction))
	}
	messages = append(messages, harmlessKL...)
	if err := refusalkit.CheckPromptsFit(m, append(messages, harmless...), cfg.MaxNewTokens); err != nil {
		return usagef("%v", err)
	}
	// The folder is this run's from here on: no other run writes it until
	// this one ends; what it already holds is refused, or replaced with
	// --overwrite (runs.Run.Ablate), in one line before any work.
	policy := runs.Fresh
	if *overwrite {
		policy = runs.Overwrite
	}
	run, err := openRunDir(dir, "ablate", policy)
	if err != nil {
		return err
	}
	defer run.Close()
	layerShown := strconv.Itoa(*layer)
	if reference && !layerGiven {
		layerShown = "to be selected"
		cfg.Layer = nil // AblateReferenceDirection selects it
	}
	header := fmt.Sprintf("refusalkit ablate: %s on %s; layer %s (%s); %d JailbreakBench, %d induced-refusal and %d harmless prompts, each without and with ablation -> %s\n"+
		"%s direction: last prompt token, %d JailbreakBench minus %d ALPACA validation prompts",
		m.Alias(), models.BackendName(m.Backend), layerShown, layerSource, len(harmful), len(induced), len(harmlessKL), dir,
		map[bool]string{true: refusalkit.DirectionHarmfulHarmless, false: "reference"}[reference], len(harmful), len(harmless))
	ab, dc, err := run.Ablate(m, x, cfg, runs.AblateOptions{Reference: reference, Tokens: tokens, NValidation: nValidation,
		Direction: dcfg, LayerSource: layerSource}, announce(header))
	if err != nil {
		return folder(err)
	}
	printAblation(ab, dc)
	return writeCharts(run)
}

// selectedLayer reads selected_layer from the evaluation's eval_summary.json
// in the output folder, else in the vector folder.
func selectedLayer(dirs ...string) (layer int, from string, ok bool) {
	for _, d := range dirs {
		var s refusalkit.EvalSummary
		p := filepath.Join(d, runs.EvalSummaryFile)
		if readJSONFile(p, &s) {
			return s.SelectedLayer, p, true
		}
	}
	return 0, "", false
}

// ablateDirState checks that the output folder can take this ablation
// (runs.CheckAblationDir).
func ablateDirState(dir string, overwrite bool) error {
	return folder(runs.CheckAblationDir(dir, overwrite))
}

// printAblation shows the refusal rates without and with ablation, and the
// cosine with the reference direction.
func printAblation(ab *refusalkit.Ablation, dc *refusalkit.DirectionCosines) {
	s := ab.Summary
	fmt.Printf("ablated direction: refusal_vector[%d] (norm %.3f), %s\n\n", s.Layer, s.DirectionNorm, s.LayerSource)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "prompt set\twithout ablation\twith ablation\tKL\tperplexity\tdegenerate\t")
	for _, row := range []struct {
		name string
		r    refusalkit.AblationResult
	}{{"JailbreakBench", s.JailbreakBench}, {"induced refusal", s.InducedRefusal}, {"harmless", s.Harmless}} {
		b, a := row.r.Baseline, row.r.Ablated
		fmt.Fprintf(w, "%s\t%d/%d (%.2f)\t%d/%d (%.2f)\t%.3f\t%.1f → %.1f\t%d → %d\t\n", row.name,
			b.RefusalCount, b.TotalCount, b.RefusalRate, a.RefusalCount, a.TotalCount, a.RefusalRate,
			a.KL.Mean, b.Perplexity.Mean, a.Perplexity.Mean, b.DegenerateCount, a.DegenerateCount)
	}
	w.Flush()
	cos := dc.Cosines()
	lo, hi, loL, hiL := math.Inf(1), math.Inf(-1), -1, -1
	for l, c := range cos {
		if math.IsNaN(c) {
			continue
		}
		if c < lo {
			lo, loL = c, l
		}
		if c > hi {
			hi, hiL = c, l
		}
	}
	if loL >= 0 {
		fmt.Printf("\ncosine with the reference direction: %.3f at layer %d (ablated), min %.3f (layer %d), max %.3f (layer %d)\n",
			cos[s.Layer], s.Layer, lo, loL, hi, hiL)
	}
}
