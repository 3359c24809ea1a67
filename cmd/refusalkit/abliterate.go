package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/refusalkit/refusalkit/internal/progress"
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/abliterate"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// cmdAbliterate writes the model with one direction projected out of every
// weight that writes into the residual stream: a checkpoint that behaves as
// `ablate` does at run time, for any runtime.
func cmdAbliterate(args []string) error {
	fs := newFlags("abliterate", "--model_path M --vector_dir DIR --out OUT [flags]")
	modelPath := fs.String("model_path", "", "the source model: a .gguf file, a Hugging Face folder, a bundled name or a hub id (required)")
	vectorDir := fs.String("vector_dir", "", "folder holding refusal_vector.safetensors, written by 'refusalkit extract' (required)")
	layer := fs.Int("layer", -1, "the row whose direction is projected out (default: selected_layer of the evaluation's eval_summary.json; for --direction "+refusalkit.DirectionHarmfulHarmless+", the layer its ablation chose)")
	direction := fs.String("direction", "vector", "what is projected out: vector (the refusal vector's row) or "+refusalkit.DirectionHarmfulHarmless+
		" (the reference method's direction that `refusalkit ablate --direction "+refusalkit.DirectionHarmfulHarmless+"` saved in VECTOR_DIR/"+refusalkit.DirectionHarmfulHarmless+")")
	out := fs.String("out", "", "output folder: the abliterated model (a Hugging Face folder, or OUT/<name of OUT>.gguf) and "+abliterate.RecordFile+" (required)")
	format := fs.String("format", "", "hf or gguf (default: the source's format; the other is refused)")
	overwrite := fs.Bool("overwrite", false, "replace an existing output folder")
	check := fs.Int("check", 0, "then load the source and the written model (twice the memory) and compare them on this many harmless validation prompts: the written model's first-token logits against runtime ablation, and the first-token KL from the source (0: off)")
	backend := fs.String("backend", "", "GoMLX backend for --check: go, xla:cpu, xla:cuda (default: $GOMLX_BACKEND, else the fastest that loads)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	layerGiven := false
	fs.Visit(func(f *flag.Flag) { layerGiven = layerGiven || f.Name == "layer" })
	if *modelPath == "" || *vectorDir == "" || *out == "" {
		return usagef("--model_path, --vector_dir and --out are required (see --help)")
	}
	if st, err := os.Stat(*vectorDir); err != nil || !st.IsDir() {
		return usagef("--vector_dir %s is not a folder: give the folder written by `refusalkit extract`", *vectorDir)
	}
	if layerGiven && *layer < 0 {
		return usagef("--layer must be 0 or more, got %d", *layer)
	}
	if *check < 0 {
		return usagef("--check must be 0 or more, got %d", *check)
	}
	var prompts []string
	if *check > 0 {
		var err error
		if prompts, err = refusalkit.EvalQueries("", refusalkit.Validation, *check, refusalkit.SpecValidationSeed, nil); err != nil {
			return usagef("--check: %v", err)
		}
	}
	x, err := readVectorDir(*vectorDir)
	if err != nil {
		return err
	}
	v, vectorFile := x.Vector, filepath.Join(*vectorDir, runs.VectorSafetensorsFile)
	layerSource := "--layer"
	switch *direction {
	case "vector":
		if !layerGiven {
			l, from, ok := selectedLayer(*vectorDir)
			if !ok {
				return usagef("--layer is required: %s holds no %s to take the selected layer from (run `refusalkit evaluate` first, or give --layer)", *vectorDir, runs.EvalSummaryFile)
			}
			*layer, layerSource = l, "selected_layer of "+from
		}
	case refusalkit.DirectionHarmfulHarmless:
		sub := filepath.Join(*vectorDir, refusalkit.DirectionHarmfulHarmless)
		vectorFile = filepath.Join(sub, runs.HarmfulHarmlessDirectionFile)
		if v, err = runs.ReadVectorFile(vectorFile); err != nil {
			return usagef("--direction %s needs %s (run `refusalkit ablate --direction %s` first): %v", *direction, vectorFile, *direction, err)
		}
		if !layerGiven {
			var s refusalkit.AblationSummary
			p := filepath.Join(sub, runs.AblationSummaryFile)
			if !readJSONFile(p, &s) {
				return usagef("--layer is required: %s holds no %s to take the direction's layer from", sub, runs.AblationSummaryFile)
			}
			*layer, layerSource = s.Layer, "layer of "+p
		}
	default:
		return usagef("--direction %q: use vector or %s", *direction, refusalkit.DirectionHarmfulHarmless)
	}
	row, norm, err := refusalkit.AblationDirection(v, *layer)
	if err != nil {
		if layerGiven {
			return usagef("--%v", err)
		}
		return usagef("%v (the %s)", err, layerSource)
	}

	ck, err := models.ReadCheckpoint(*modelPath)
	if err != nil {
		return usagef("%v", err)
	}
	if err := v.CheckFits(ck.Config); err != nil {
		return usagef("%v", err)
	}
	if v.Model != "" && v.Model != ck.Alias {
		return usagef("the vector in %s was made with %q, not %q: abliterate the model it was extracted from", *vectorDir, v.Model, ck.Alias)
	}
	if err := sameModelContent(vectorFile, *vectorDir, ck.Path); err != nil {
		return err
	}
	vectorSHA, err := abliterate.FileSHA256(vectorFile)
	if err != nil {
		return err
	}
	plan, err := abliterate.Prepare(*modelPath, *out, abliterate.Options{
		Direction: row, Format: *format, Overwrite: *overwrite, Progress: progress.New(os.Stderr),
		Provenance: map[string]string{
			"direction": *direction, "vector_file": vectorFile, "vector_sha256": vectorSHA,
			"layer": strconv.Itoa(*layer), "layer_source": layerSource, "direction_norm": strconv.FormatFloat(norm, 'g', 6, 64),
			"row_convention": refusalkit.RowConvention,
		},
	})
	if err != nil {
		return usagef("%v", err)
	}
	fmt.Fprintf(os.Stderr, "refusalkit abliterate: %s (%s) without the %s direction of row %d (%s) -> %s (%.2f GB)\n",
		ck.Alias, plan.Format, *direction, *layer, layerSource, *out, float64(plan.Bytes)/1e9)
	rec, err := plan.Write()
	if err != nil {
		return err
	}
	if rec.Untied != "" {
		fmt.Fprintln(os.Stderr, "untied:", rec.Untied)
	}
	for _, n := range rec.NotCopied {
		fmt.Fprintf(os.Stderr, "warning: %s of the source folder not copied (weights in another format would be the source's, unmodified)\n", n)
	}
	model := *out
	if rec.Model != "." {
		model = filepath.Join(*out, rec.Model)
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %d tensors rewritten, the largest component left along the direction %.2g of the source's\n", model, len(rec.Tensors), rec.MaxLeftover)
	if *check > 0 {
		if rec.Check, err = checkAbliterated(*modelPath, model, *backend, row, prompts); err != nil {
			return err
		}
		if err := abliterate.SaveRecord(*out, rec); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "check on %d %s: max |logit - runtime ablation| %.2g; first-token KL from the source %.4f\n",
			rec.Check.NPrompts, rec.Check.Prompts, rec.Check.MaxLogitDiff, rec.Check.FirstTokenKL)
	}
	fmt.Println(model)
	return nil
}

// checkAbliterated loads the source and the written model in float32, one
// after the other, and compares them (abliterate.Compare).
func checkAbliterated(source, written, backend string, direction []float32, prompts []string) (*abliterate.Check, error) {
	src, err := loadModel(source, backend, "float32", 1)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	abl, err := loadModel(written, backend, "float32", 1)
	if err != nil {
		return nil, err
	}
	defer abl.Close()
	c, err := abliterate.Compare(src, abl, direction, prompts, 8)
	if c != nil {
		c.Prompts = fmt.Sprintf("ALPACA validation instructions (seed %d)", refusalkit.SpecValidationSeed)
	}
	return c, err
}

// sameModelContent refuses a vector whose provenance (its file's, else its
// run folder's metadata.json) names other model bytes than the source's:
// same alias and shape, another model (a fine-tune, another quantisation).
// A vector written before the model's content was recorded is let through
// on its alias and shape.
func sameModelContent(vectorFile, vectorDir, source string) error {
	var recorded string
	for _, p := range []string{vectorFile, vectorDir} {
		if prov, err := runs.ReadProvenance(p); err == nil && prov.ModelContent != "" {
			recorded = prov.ModelContent
			break
		}
	}
	if recorded == "" {
		return nil
	}
	content, err := refusalkit.ModelContent(source)
	if err != nil {
		return err
	}
	if content != recorded {
		return usagef("the vector in %s was made with other model files (%s) than %s's (%s): abliterate the model it was extracted from", vectorDir, recorded, source, content)
	}
	return nil
}
