package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// cmdRejudge makes a finished extraction's vector again with another judge,
// from the same responses: nothing is generated, so the two vectors differ
// by their filtering alone.
func cmdRejudge(args []string) error {
	fs := newFlags("rejudge", "--model_path M --run_dir DIR --judge NAME --output_dir OUT [flags]")
	modelPath := fs.String("model_path", "", "the model the run was made with (required)")
	runDir := fs.String("run_dir", "", "a finished extraction's folder, whose responses are re-filtered (required)")
	outDir := fs.String("output_dir", "", "the new run's folder (required; not --run_dir)")
	judge := judgeFlag(fs, "the judge that keeps responses")
	overwrite := fs.Bool("overwrite", false, "replace a previous run in the output folder")
	backend := fs.String("backend", "", "GoMLX backend: go, xla:cpu, xla:cuda (default: $GOMLX_BACKEND, else the fastest that loads)")
	dtype := dtypeFlag(fs)
	devices := devicesFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkJudge(*judge); err != nil {
		return err
	}
	if _, err := models.ParseDType(*dtype); err != nil {
		return usagef("--dtype: %v", err)
	}
	if *modelPath == "" || *runDir == "" || *outDir == "" {
		return usagef("--model_path, --run_dir and --output_dir are required (see --help)")
	}
	x, err := readVectorDir(*runDir)
	if err != nil {
		return err
	}
	var md runs.Metadata
	if !readJSONFile(filepath.Join(*runDir, runs.MetadataFile), &md) || !md.Complete {
		return usagef("--run_dir %s holds no finished extraction (metadata.json with \"complete\": true)", *runDir)
	}
	x.ResponsesFrom = fmt.Sprintf("%s (run digest %s, judge %v)", *runDir, md.RunDigest, md.Judge["method"])
	if err := probeRunDir(*outDir); err != nil {
		return err
	}
	if err := extractDirState(*outDir, *overwrite, false); err != nil {
		return err
	}
	m, mismatch, err := loadForVector("rejudge", *modelPath, *backend, *dtype, *devices, x.Vector, x.Config.WithDefaults().MaxNewTokens)
	if err != nil {
		return err
	}
	for _, w := range mismatch {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	policy := runs.Fresh
	if *overwrite {
		policy = runs.Overwrite
	}
	run, err := openRunDir(*outDir, "rejudge", policy)
	if err != nil {
		return err
	}
	defer run.Close()
	y, runErr := run.Rejudge(m, x, *judge)
	if y == nil {
		return folder(runErr)
	}
	fmt.Fprintf(os.Stderr, "kept (%s judge) %d/%d compliant and %d/%d refusal responses (the %s run kept %d and %d)\n", *judge,
		len(y.FilteredCompliant), len(y.Compliant), len(y.FilteredRefusal), len(y.Refusal), *runDir, len(x.FilteredCompliant), len(x.FilteredRefusal))
	if runErr != nil {
		if errors.Is(runErr, refusalkit.ErrTooFewResponses) {
			return fmt.Errorf("%v (all responses and metadata are saved in %s)", runErr, *outDir)
		}
		return runErr
	}
	cos, err := refusalkit.LayerCosines(y.Vector, x.Vector)
	if err != nil {
		return err
	}
	fmt.Printf("cosine of each row with the vector of %s:\nlayer\tcosine\n", *runDir)
	for l, c := range cos {
		fmt.Printf("%d\t%.4f\n", l, c)
	}
	fmt.Fprintf(os.Stderr, "refusal vector written to %s\n", *outDir)
	return writeCharts(run)
}
