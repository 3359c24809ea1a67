package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/refusalkit/refusalkit/charts"
	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
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
	if st, err := os.Stat(*dir); err == nil && st.IsDir() {
		// Not while a run writes the folder: its files are not final yet.
		lock, err := runs.LockDir(*dir, "charts")
		if err != nil {
			return inUse(err, *dir, "--run_dir ", "wait for it to end")
		}
		defer lock.Release()
	}
	return printCharts(charts.WriteRun(*dir))
}

// cmdReport prints a run folder's results as Markdown (runs.WriteReport).
func cmdReport(args []string) error {
	fs := newFlags("report", "--run_dir DIR [--title T] [--charts DIR]")
	dir := fs.String("run_dir", "", "a folder holding a finished extraction, and what evaluate and ablate added (required)")
	title := fs.String("title", "", "the report's heading (default: the model's alias)")
	pictures := fs.String("charts", "", "a folder of the run's charts as .png files (tools/screenshot_charts.sh), as the report's reader reaches it, to show under their sections")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usagef("--run_dir is required (see --help)")
	}
	if st, err := os.Stat(*dir); err != nil || !st.IsDir() {
		return usagef("--run_dir %s is not a folder", *dir)
	}
	if _, err := os.Stat(filepath.Join(*dir, runs.MetadataFile)); err != nil {
		return usagef("--run_dir %s holds no %s: give a folder written by `refusalkit extract`", *dir, runs.MetadataFile)
	}
	lock, err := runs.LockDir(*dir, "report")
	if err != nil {
		return inUse(err, *dir, "--run_dir ", "wait for it to end")
	}
	defer lock.Release()
	return runs.WriteReport(os.Stdout, *dir, runs.ReportOptions{Title: *title, Charts: *pictures,
		Command: "refusalkit report " + strings.Join(args, " ")})
}

// writeCharts writes every chart the run folder's files allow into
// <dir>/charts/ and lists them on stderr.
func writeCharts(run *runs.Run) error { return printCharts(charts.WriteRun(run.Dir)) }

func printCharts(paths []string, err error) error {
	if err != nil {
		return err
	}
	for _, p := range paths {
		fmt.Fprintf(os.Stderr, "chart: %s\n", p)
	}
	return nil
}

// cmdRunDir prints the run folder extract writes for a model when
// --output_dir is not given, so scripts need not spell the path themselves.
func cmdRunDir(args []string) error {
	fs := newFlags("rundir", "--model_path M")
	modelPath := fs.String("model_path", "", "model: "+models.DefaultModel+", a .gguf file, a Hugging Face folder or hub id (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *modelPath == "" {
		return usagef("--model_path is required (see --help)")
	}
	m, err := loadModel(*modelPath, "go", "float32", 1) // only its alias is needed: the pure-Go backend loads fastest
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Println(runs.DefaultDir(m.Alias()))
	return nil
}
