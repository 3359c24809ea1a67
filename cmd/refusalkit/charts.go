package main

import (
	"fmt"
	"os"

	"github.com/refusalkit/refusalkit/charts"
)

// cmdCharts (re)draws the charts of a run folder as HTML files.
func cmdCharts(args []string) error {
	fs := newFlags("charts", "--run_dir DIR")
	dir := fs.String("run_dir", "", "a folder written by 'refusalkit extract' and/or 'refusalkit evaluate' (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usagef("--run_dir is required (see --help)")
	}
	return writeCharts(*dir)
}

// writeCharts writes every chart the run folder's files allow into
// <dir>/charts/ and lists them on stderr.
func writeCharts(dir string) error {
	paths, err := charts.WriteRunCharts(dir)
	if err != nil {
		return err
	}
	for _, p := range paths {
		fmt.Fprintf(os.Stderr, "chart: %s\n", p)
	}
	return nil
}
