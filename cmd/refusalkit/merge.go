package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// cmdMerge makes the shards of a run (extract --shard i/M, on one machine
// or many) into the run's own files, as one extract would have written them.
func cmdMerge(args []string) error {
	fs := newFlags("merge", "--output_dir DIR SHARD_DIR... (every shard's folder, flags first)")
	outDir := fs.String("output_dir", "", "the run folder to write: the spec's six files and the vector (required)")
	overwrite := fs.Bool("overwrite", false, "replace a run in the output folder")
	if err := flagError(fs, fs.Parse(args)); err != nil {
		return err
	}
	dirs := fs.Args()
	if *outDir == "" {
		return usagef("--output_dir is required (see --help)")
	}
	if len(dirs) == 0 {
		return usagef("give every shard's folder after the flags (see --help)")
	}
	for _, d := range dirs {
		if strings.HasPrefix(d, "-") {
			return usagef("flag %s after the shard folders: give the flags first", d)
		}
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return usagef("shard folder %s is not a folder: give the folders `refusalkit extract --shard i/M` wrote", d)
		}
	}
	policy := runs.Fresh
	if *overwrite {
		policy = runs.Overwrite
	}
	run, err := openRunDir(*outDir, "merge", policy)
	if err != nil {
		return err
	}
	defer run.Close()
	x, err := run.Merge(dirs)
	if x == nil {
		return folder(err)
	}
	fmt.Fprintf(os.Stderr, "merged %d shards: kept %d/%d compliant and %d/%d refusal responses\n", len(dirs),
		len(x.FilteredCompliant), len(x.Compliant), len(x.FilteredRefusal), len(x.Refusal))
	if err != nil { // too few kept for a vector: every response is saved, and the chart shows it
		_ = writeCharts(run)
		return err
	}
	fmt.Fprintf(os.Stderr, "refusal vector [%d %d] written to %s\n", len(x.Vector.Data), x.Vector.DModel, *outDir)
	return writeCharts(run)
}
