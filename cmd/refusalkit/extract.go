package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/refusalkit/refusalkit/internal/progress"
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// cmdExtract is the Go counterpart of the spec's run_refusal_vector_pipeline.py.
func cmdExtract(args []string) error {
	fs := newFlags("extract", "--model_path M [flags]")
	def := refusalkit.ExtractConfig{}.WithDefaults()
	modelPath := fs.String("model_path", "", "model: "+models.DefaultModel+", a .gguf file, a Hugging Face folder or hub id (required)")
	nSamples := fs.Int("n_samples", def.NSamples, "number of ALPACA (train split) queries to sample")
	nCompletions := fs.Int("n_completions", def.NCompletions, "completions per query, in each mode")
	maxNew := fs.Int("max_new_tokens", def.MaxNewTokens, "maximum tokens to generate per response")
	batchFlag := fs.String("generation_batch_size", fmt.Sprint(def.BatchSize), "rows per generation batch, or auto (picked from the memory available)")
	seed := fs.Int64("seed", *def.Seed, "random seed (query sampling and generation)")
	outDir := fs.String("output_dir", "", "output folder (default runs/{model_alias}/harmless_refusal_vectors, under $REFUSALKIT_RUNS when set; refusalkit rundir prints it)")
	instrs := &stringList{list: def.RefusalInstructions}
	fs.Var(instrs, "refusal_instruction", "`instruction` prepended to the query in refusal mode; repeat the flag to give several: completion c of each query uses instruction c mod their number")
	dataset := fs.String("dataset", "", "instructions file (.json, .jsonl, .csv with an \"instruction\" field; its train split is used) instead of ALPACA")
	temperature := fs.Float64("temperature", def.Sampling.Temperature, "sampling temperature")
	topP := fs.Float64("top_p", def.Sampling.TopP, "nucleus sampling mass")
	topK := fs.Int("top_k", def.Sampling.TopK, "top-k sampling (0: off)")
	overwrite := fs.Bool("overwrite", false, "replace a previous run in the output folder")
	parseSpecial := fs.Bool("parse_special_tokens", false, "read special-token spellings in user text (e.g. <|im_end|> in an instruction or the refusal instruction) as control tokens, as transformers' apply_chat_template does; by default they are plain text")
	resume := fs.Bool("resume", false, "continue an interrupted run in the output folder (same flags), without regenerating finished batches")
	backend := fs.String("backend", "", "GoMLX backend: go, xla:cpu, xla:cuda (default: $GOMLX_BACKEND, else the fastest that loads)")
	dtype := dtypeFlag(fs)
	devices := devicesFlag(fs)
	judge := judgeFlag(fs, "the judge that keeps responses")
	shardFlag := fs.String("shard", "", "i/M: generate only shard i (0-based) of M, for a run split across machines; writes the shard's responses and activation sums (default --output_dir runs/{model_alias}/shards/i-of-M), which `refusalkit merge` makes into the run's files")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var shard *refusalkit.Shard
	if *shardFlag != "" {
		sh, err := refusalkit.ParseShard(*shardFlag)
		if err != nil {
			return usagef("--%v", err)
		}
		if *batchFlag == "auto" {
			return usagef("--shard needs a fixed --generation_batch_size, not auto: every shard must split the run into the same batches")
		}
		shard = &sh
	}
	if err := checkJudge(*judge); err != nil {
		return err
	}
	if _, err := models.ParseDType(*dtype); err != nil {
		return usagef("--dtype: %v", err)
	}
	if *modelPath == "" {
		return usagef("--model_path is required (see --help)")
	}
	batch := new(int)
	if *batchFlag != "auto" {
		if _, err := fmt.Sscanf(*batchFlag, "%d", batch); err != nil || fmt.Sprint(*batch) != *batchFlag {
			return usagef("--generation_batch_size must be a positive integer or auto, got %q", *batchFlag)
		}
	} else {
		*batch = 1 // set from the model's memory needs once it is loaded
	}
	for name, v := range map[string]int{"n_samples": *nSamples, "n_completions": *nCompletions, "max_new_tokens": *maxNew, "generation_batch_size": *batch} {
		if err := positive(name, v); err != nil {
			return err
		}
	}
	if err := checkUserSettings(*temperature, *topP, *topK, instrs.list...); err != nil {
		return err
	}
	cfg := refusalkit.ExtractConfig{NSamples: *nSamples, Dataset: *dataset, Judge: *judge, Shard: shard, GenerateConfig: refusalkit.GenerateConfig{
		NCompletions: *nCompletions, MaxNewTokens: *maxNew, BatchSize: *batch, Seed: seed,
		Sampling:            &models.Sampling{Temperature: *temperature, TopP: *topP, TopK: *topK},
		RefusalInstructions: instrs.list, ParseSpecialTokens: *parseSpecial,
	}}
	if err := cfg.CheckRefusalInstructions(); err != nil {
		return usagef("%v", err)
	}

	// Check everything cheap before loading the model.
	pool, err := refusalkit.TrainPool(cfg.Dataset)
	if err != nil {
		return usagef("%v", err)
	}
	if cfg.NSamples > len(pool) {
		return usagef("--n_samples %d exceeds the %d instructions of the train split (each instruction's split is fixed by a hash of its text: about 80%% train, 10%% validation, 10%% test): lower --n_samples or give a larger dataset", cfg.NSamples, len(pool))
	}
	if *outDir != "" {
		if err := probeRunDir(*outDir); err != nil { // before the model loads
			return err
		}
	}
	m, err := loadModel(*modelPath, *backend, *dtype, *devices)
	if err != nil {
		return err
	}
	if err := needChat(m, "extract"); err != nil {
		return err
	}
	if err := fitsContext(m, cfg.MaxNewTokens); err != nil {
		return err
	}
	if err := promptsFit(m, cfg); err != nil {
		return err
	}
	if *batchFlag == "auto" {
		cfg.BatchSize = refusalkit.AutoBatchSize(m, cfg.MaxNewTokens)
		fmt.Fprintf(os.Stderr, "refusalkit extract: --generation_batch_size auto: %d rows\n", cfg.BatchSize)
	}
	dir := cmp.Or(*outDir, runs.DefaultDir(m.Alias()))
	if shard != nil && *outDir == "" {
		dir = runs.DefaultShardDir(m.Alias(), *shard)
	}
	if *resume && *overwrite {
		return usagef("--resume and --overwrite exclude each other: --resume continues the run in %s, --overwrite replaces it", dir)
	}
	// The folder is this run's from here on: no other run writes it until
	// this one ends. What it may already hold, and what becomes of it, is
	// the run's policy (runs.Fresh, Overwrite, Resume): refused there in one
	// line before any work.
	policy := runs.Fresh
	if *overwrite {
		policy = runs.Overwrite
	} else if *resume {
		policy = runs.Resume
	}
	run, err := openRunDir(dir, "extract", policy)
	if err != nil {
		return err
	}
	defer run.Close()
	header := fmt.Sprintf("refusalkit extract: %s (%d layers, d_model %d) on %s; %d queries x %d completions x 2 modes -> %s",
		m.Alias(), m.Config.NumLayers, m.Config.DModel, models.BackendName(m.Backend), cfg.NSamples, cfg.NCompletions, dir)
	if shard != nil {
		header += fmt.Sprintf(" (shard %s: batches b with b mod %d = %d)", shard, shard.Count, shard.Index)
	}
	x, runErr := run.Extract(m, cfg, announce(header))
	if x == nil {
		return folder(runErr)
	}
	md := runs.MetadataFor(m, x)
	fmt.Fprintf(os.Stderr, "kept (%s judge) %d/%d compliant (%.1f%%) and %d/%d refusal (%.1f%%) responses in %.0fs\n", cfg.Judge,
		md.NCompliantResponsesKept, md.NCompliantResponsesGenerated, 100*md.CompliantFilterRate,
		md.NRefusalResponsesKept, md.NRefusalResponsesGenerated, 100*md.RefusalFilterRate, x.Timings["total"])
	if len(md.RefusalKeptByInstruction) > 1 {
		for _, k := range md.RefusalKeptByInstruction {
			fmt.Fprintf(os.Stderr, "  refusal instruction %d (%q): kept %d/%d (%.1f%%)\n", k.Index, md.RefusalInstructions[k.Index], k.Kept, k.Generated, 100*k.FilterRate)
		}
	}
	if runErr != nil {
		_ = writeCharts(run) // the kept-vs-generated chart shows what went wrong
		if errors.Is(runErr, refusalkit.ErrTooFewResponses) {
			return fmt.Errorf("%v (all responses and metadata are saved in %s)", runErr, dir)
		}
		return runErr
	}
	if shard != nil {
		fmt.Fprintf(os.Stderr, "shard %s written to %s: merge every shard's folder with `refusalkit merge --output_dir DIR SHARD_DIR...`\n", shard, dir)
		return nil
	}
	fmt.Fprintf(os.Stderr, "refusal vector %v written to %s\n", md.VectorShape, dir)
	return writeCharts(run)
}

// announce is the progress option of a run: header, printed once its
// folder's checks have passed and its first stage starts (a refused run
// prints its one line only), then each stage's progress.
func announce(header string) refusalkit.Option {
	show, once := progress.New(os.Stderr), sync.OnceFunc(func() { fmt.Fprintln(os.Stderr, header) })
	return refusalkit.WithProgress(func(stage string, done, total int) { once(); show(stage, done, total) })
}

// fitsContext checks --max_new_tokens leaves room for a prompt in the model's context.
func fitsContext(m *models.Model, maxNew int) error {
	if maxNew >= m.Config.ContextLength {
		return usagef("--max_new_tokens %d is past the model's context of %d tokens: lower it", maxNew, m.Config.ContextLength)
	}
	return nil
}

// dirHas reports whether dir/name exists.
func dirHas(dir, name string) bool {
	_, err := os.Stat(filepath.Join(dir, name))
	return err == nil
}
