package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/ggufvec"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// cmdEvaluate is the Go counterpart of the spec's eval_refusal_vector.py.
func cmdEvaluate(args []string) error {
	fs := newFlags("evaluate", "--model_path M --vector_dir DIR [flags]")
	def := refusalkit.EvalConfig{}.WithDefaults()
	modelPath := fs.String("model_path", "", "model: "+models.DefaultModel+", a .gguf file, a Hugging Face folder or hub id (required)")
	vectorDir := fs.String("vector_dir", "", "folder holding refusal_vector.safetensors, written by 'refusalkit extract' (required, unless --vector)")
	vectorFile := fs.String("vector", "", "a vector file instead of --vector_dir: a llama.cpp or repeng control vector (.gguf; direction.N is read as row N+1) or a refusal_vector.safetensors; needs --output_dir")
	nVal := fs.Int("n_validation_samples", def.NValidation, "validation queries (validation split) for layer selection")
	nTest := fs.Int("n_test_samples", def.NTest, "test queries (test split) for the coefficient sweep")
	coeffs := floatList(def.Coefficients)
	fs.Var(&coeffs, "coefficients", "activation-addition coefficients, space- or comma-separated")
	maxNew := fs.Int("max_new_tokens", def.MaxNewTokens, "maximum tokens to generate")
	batch := fs.Int("batch_size", def.BatchSize, "batch size for generation and layer selection")
	valSeed := fs.Int64("validation_seed", *def.ValidationSeed, "seed for sampling validation queries")
	testSeed := fs.Int64("test_seed", *def.TestSeed, "seed for sampling test queries")
	outDir := fs.String("output_dir", "", "output folder (default: --vector_dir)")
	selection := fs.String("layer_selection", "steering", "layer ranking: steering (the spec's method), norm, or steering_kl (the best steering score among layers whose KL at coefficient 1 stays within --max_kl)")
	maxKL := fs.Float64("max_kl", refusalkit.SpecMaxKL, "bound on the KL (nats) a steering may cause on the validation prompts, for steering_kl and --target_refusal_rate (Arditi et al. 2024: 0.1)")
	target := fs.Float64("target_refusal_rate", 0, "calibrate: search, on the validation split, the smallest coefficient whose refusal rate reaches this (in (0, 1]) within --max_kl, and add it to the sweep (0: off)")
	refusalTokens := fs.String("refusal_tokens", "", "comma-separated token ids for the refusal score (default: derived from the vector folder's responses)")
	sample := fs.Bool("sample", false, "sample the sweep's completions (temperature 1, top-p 0.95, top-k 64) instead of greedy decoding")
	seed := fs.Int64("seed", *def.Seed, "sampling seed, with --sample")
	dataset := fs.String("dataset", "", "instructions file (.json, .jsonl, .csv) instead of ALPACA; its validation and test splits are used")
	parseSpecial := fs.Bool("parse_special_tokens", false, "read special-token spellings in user text (e.g. <|im_end|> in an instruction) as control tokens, as transformers' apply_chat_template does; by default they are plain text")
	overwrite := fs.Bool("overwrite", false, "replace a previous evaluation in the output folder")
	backend := fs.String("backend", "", "GoMLX backend: go, xla:cpu, xla:cuda (default: $GOMLX_BACKEND, else the fastest that loads)")
	dtype := dtypeFlag(fs)
	devices := devicesFlag(fs)
	judge := judgeFlag(fs, "the judge that counts the sweep's refusals")
	if err := parseFlags(fs, joinSpaceLists(args, "coefficients")); err != nil {
		return err
	}
	if err := checkJudge(*judge); err != nil {
		return err
	}
	if _, err := models.ParseDType(*dtype); err != nil {
		return usagef("--dtype: %v", err)
	}
	if *vectorFile != "" {
		if *vectorDir != "" {
			return usagef("give --vector_dir or --vector, not both")
		}
		if *outDir == "" {
			return usagef("--vector %s needs --output_dir: the folder to write the evaluation (and the vector as read) into", *vectorFile)
		}
	} else if *modelPath == "" || *vectorDir == "" {
		return usagef("--model_path and --vector_dir are required (see --help)")
	} else if st, err := os.Stat(*vectorDir); err != nil || !st.IsDir() {
		return usagef("--vector_dir %s is not a folder: give the folder written by `refusalkit extract`", *vectorDir)
	}
	if *modelPath == "" {
		return usagef("--model_path is required (see --help)")
	}
	for name, v := range map[string]int{"n_validation_samples": *nVal, "n_test_samples": *nTest, "max_new_tokens": *maxNew, "batch_size": *batch} {
		if err := positive(name, v); err != nil {
			return err
		}
	}
	if *selection != "steering" && *selection != "norm" && *selection != "steering_kl" {
		return usagef("--layer_selection must be steering, norm or steering_kl, got %q", *selection)
	}
	if !(*maxKL > 0) || math.IsInf(*maxKL, 0) {
		return usagef("--max_kl must be a finite number > 0, got %v", *maxKL)
	}
	if !(*target >= 0 && *target <= 1) {
		return usagef("--target_refusal_rate must be in (0, 1] (0: off), got %v", *target)
	}
	var tokenIDs []int32
	if *refusalTokens != "" {
		for _, s := range strings.Split(*refusalTokens, ",") {
			id, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
			if err != nil {
				return usagef("--refusal_tokens: %q is not a token id (give comma-separated integers)", s)
			}
			tokenIDs = append(tokenIDs, int32(id))
		}
	}
	cfg := refusalkit.EvalConfig{NValidation: *nVal, NTest: *nTest, ValidationSeed: valSeed, TestSeed: testSeed,
		LayerSelection: *selection, MaxKL: *maxKL, TargetRefusalRate: *target, RefusalTokenIDs: tokenIDs, Dataset: *dataset,
		SweepConfig: refusalkit.SweepConfig{Coefficients: coeffs, MaxNewTokens: *maxNew, BatchSize: *batch,
			ParseSpecialTokens: *parseSpecial, Judge: *judge}}
	if *sample {
		cfg.Sampling, cfg.Seed = &refusalkit.SpecSampling, seed
	}

	// Check the vector and the queries before loading the model; the shape
	// is checked against the model right after.
	var x *refusalkit.Extraction
	var cv *ggufvec.ControlVector // a control vector, read as rows once the model's shape is known
	var err error
	if *vectorFile != "" {
		x, cv, err = readVectorFile(*vectorFile)
	} else {
		x, err = readVectorDir(*vectorDir)
	}
	if err != nil {
		return err
	}
	v := x.Vector
	var warnings []string
	if v != nil {
		if warnings, err = v.CheckValues(cfg.Coefficients); err != nil {
			return usagef("%v", err)
		}
	}
	validation, test, err := refusalkit.EvalPlan(cfg, x.Instructions())
	if err != nil {
		return usagef("%v", err)
	}
	dir := *outDir
	if dir == "" {
		dir = *vectorDir
	}
	if err := probeRunDir(dir); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, runs.VectorSafetensorsFile)); err == nil && *vectorFile != "" {
		return usagef("--output_dir %s already holds a refusal vector: give another folder for the evaluation of --vector %s", dir, *vectorFile)
	}
	if err := evalDirState(dir, *overwrite); err != nil {
		return err
	}
	m, mismatch, err := loadForVector("evaluate", *modelPath, *backend, *dtype, *devices, v, cfg.MaxNewTokens)
	if err != nil {
		return err
	}
	warnings = append(warnings, mismatch...)
	if cv != nil {
		var dropped []int
		if v, dropped, err = refusalkit.FromControlVector(cv, m.Alias(), m.Config.NumLayers, m.Config.DModel); err != nil {
			return usagef("%s: %v", *vectorFile, err)
		}
		for _, n := range dropped {
			warnings = append(warnings, fmt.Sprintf("%s: direction.%d is added after the last block, before the final norm, where refusalkit has no row: it is not evaluated", *vectorFile, n))
		}
		v.Provenance["source"] = *vectorFile
		x.Vector = v
		more, err := v.CheckValues(cfg.Coefficients)
		if err != nil {
			return usagef("%v", err)
		}
		warnings = append(warnings, more...)
	}
	for _, w := range warnings {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	if err := refusalkit.CheckRefusalTokenIDs(m, tokenIDs); err != nil {
		return usagef("%v", err)
	}
	if err := refusalkit.CheckPromptsFit(m, append(validation, test...), cfg.MaxNewTokens); err != nil {
		return usagef("%v", err)
	}
	// The folder is this run's from here on: no other run writes it until
	// this one ends. An evaluation already there is refused in one line
	// before any work, or replaced with --overwrite (runs.Fresh, Overwrite).
	policy := runs.Fresh
	if *overwrite {
		policy = runs.Overwrite
	}
	run, err := openRunDir(dir, "evaluate", policy)
	if err != nil {
		return err
	}
	defer run.Close()
	header := fmt.Sprintf("refusalkit evaluate: %s on %s; %d validation and %d test queries; coefficients %v -> %s",
		m.Alias(), models.BackendName(m.Backend), cfg.NValidation, cfg.NTest, cfg.Coefficients, dir)
	ev, err := run.Evaluate(m, x, cfg, announce(header))
	if err != nil {
		return folder(err)
	}
	printEvaluation(ev)
	return writeCharts(run)
}

// printEvaluation shows the top layers and the refusal rate by coefficient.
func printEvaluation(ev *refusalkit.Evaluation) {
	s := ev.Summary
	fmt.Printf("refusal tokens (%s): %q\n", s.RefusalTokens.Source, s.RefusalTokens.Text)
	fmt.Printf("baseline refusal score %.3f; selected layer %d (steering score %.3f", s.BaselineRefusalScore, s.SelectedLayer, s.SelectedLayerSteeringScore)
	if kl := ev.Scores.Selected().KL; kl != nil {
		fmt.Printf("; KL %.3f at coefficient 1 on the validation prompts", *kl)
	}
	fmt.Print(")\n\n")
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "layer\tsteering score\timprovement\t")
	for _, l := range ev.Scores.PerLayerScores[:min(5, len(ev.Scores.PerLayerScores))] {
		fmt.Fprintf(w, "%d\t%.3f\t%+.3f\t\n", l.Layer, l.SteeringScore, l.ImprovementOverBaseline)
	}
	fmt.Fprintln(w, "\t\t\t")
	fmt.Fprintln(w, "coefficient\trefusals\trefusal rate\trefuses\tanswers\tbreaks down\tKL\tperplexity\trepetition\tdegenerate\t")
	for _, c := range s.Coefficients {
		r := s.ResultsByCoefficient[refusalkit.CoeffKey(c)]
		fmt.Fprintf(w, "%g\t%d/%d\t%.2f\t%d\t%d\t%d\t%.3f\t%.1f\t%.2f\t%d\t\n", c, r.RefusalCount, r.TotalCount, r.RefusalRate,
			r.Outcomes.Refuses, r.Outcomes.Answers, r.Outcomes.BreaksDown, r.KL.Mean, r.Perplexity.Mean, r.Repetition.Mean, r.DegenerateCount)
	}
	w.Flush()
	if cal := ev.Calibration; cal != nil {
		fmt.Printf("\ncalibration (validation split, %d points): %s\n", len(cal.Points), cal.Reason)
	}
}

// readVectorFile reads evaluate's --vector before any model loads: a
// refusalkit .safetensors vector, or a control-vector .gguf (returned as is:
// its rows need the model's shape). The extraction's Source is path: the
// evaluation saves the vector into its folder and names path as vector_dir.
func readVectorFile(path string) (*refusalkit.Extraction, *ggufvec.ControlVector, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, nil, usagef("--vector %s does not exist", path)
	}
	switch {
	case strings.HasSuffix(path, ".gguf"):
		cv, err := ggufvec.Read(path)
		if err != nil {
			return nil, nil, usagef("--vector %v", err)
		}
		return &refusalkit.Extraction{Source: path}, cv, nil
	case strings.HasSuffix(path, ".safetensors"):
		v, err := runs.ReadVectorFile(path)
		if err != nil {
			return nil, nil, usagef("%v", err)
		}
		return &refusalkit.Extraction{Vector: v, Source: path}, nil, nil
	}
	return nil, nil, usagef("--vector %s is neither a control vector (.gguf) nor a refusal vector (.safetensors)", path)
}
