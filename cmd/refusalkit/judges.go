package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/refusalkit/refusalkit/refusalkit/judge"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// cmdJudges measures the judges: their agreement with hand labels, and what
// each reads in a run folder's saved replies. It needs no model.
func cmdJudges(args []string) error {
	fs := newFlags("judges", "[--labels FILE] [--split heldout] [--run_dir DIR] [--judge NAME]")
	labels := fs.String("labels", "", "labels file (JSON lines; testdata/judge/labels.jsonl): print every judge's agreement with it, per source")
	split := fs.String("split", "heldout", "which labelled replies to report on: heldout (the default: judges were designed on dev), dev, or all")
	runDir := fs.String("run_dir", "", "a run folder: count what every judge reads in its saved responses and sweep completions")
	misses := fs.Bool("disagreements", false, "with --labels, also list every labelled reply a judge reads otherwise (id, label, verdict, text)")
	modelPath := fs.String("model_path", "", "with --labels, also measure the model judge: this chat model asked whether each reply refuses (log-odds of Yes over No); needs the model, not the network")
	backend := fs.String("backend", "", "GoMLX backend for --model_path (default: $GOMLX_BACKEND, else the fastest that loads)")
	only := fs.String("judge", "", "one judge only (default: every judge: "+strings.Join(judge.Names, ", ")+")")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *labels == "" && *runDir == "" {
		return usagef("give --labels FILE, --run_dir DIR or both (see --help)")
	}
	if *split != "heldout" && *split != "dev" && *split != "all" {
		return usagef("--split must be heldout, dev or all, got %q", *split)
	}
	names := judge.Names
	if *only != "" {
		if err := checkJudge(*only); err != nil {
			return err
		}
		names = []string{*only}
	}
	var judges []judge.Judge
	for _, n := range names {
		judges = append(judges, judge.Must(n))
	}
	if *runDir != "" {
		if st, err := os.Stat(*runDir); err != nil || !st.IsDir() {
			return usagef("--run_dir %s is not a folder", *runDir)
		}
	}
	if *labels != "" {
		ls, err := judge.ReadLabels(*labels)
		if err != nil {
			return usagef("--labels: %v", err)
		}
		sel := judge.SelectSplit(ls, *split)
		if len(sel) == 0 {
			return usagef("--labels %s has no %s replies", *labels, *split)
		}
		all := judges
		var modelNote string
		if *modelPath != "" {
			mjs, note, err := modelJudges(*modelPath, *backend, ls)
			if err != nil {
				return err
			}
			all, modelNote = append(append([]judge.Judge{}, judges...), mjs...), note
		}
		fmt.Printf("judges against the %s labels of %s (%d of %d replies)\n\n", *split, *labels, len(sel), len(ls))
		judge.PrintAgreement(os.Stdout, judge.Agreements(all, sel))
		if modelNote != "" {
			fmt.Printf("\n%s\n", modelNote)
		}
		if *misses {
			for _, j := range all {
				fmt.Printf("\n%s judge disagrees on:\n", j.Name())
				for _, l := range sel {
					if v := j.Verdict(l.Response); judge.LabelOf(v) != l.Label {
						fmt.Printf("  %s  label %s, verdict %s: %q\n", l.ID, l.Label, v, l.Response)
					}
				}
			}
		}
	}
	if *runDir != "" {
		if *labels != "" {
			fmt.Println()
		}
		return printRunVerdicts(*runDir, judges)
	}
	return nil
}

// modelJudges loads a chat model and reads every labelled reply with it
// (both splits: the calibrated judge's threshold is chosen on dev), returning
// two judges — the model's own answer (threshold 0), and the calibrated one
// (replies that break down set aside, the threshold chosen on the dev
// labels) — and a line on how its log-odds separate the labelled refusals
// (AUC, whatever the threshold) and which threshold dev chose.
func modelJudges(path, backend string, ls []judge.LabelledReply) ([]judge.Judge, string, error) {
	m, err := loadModel(path, backend, "", 1)
	if err != nil {
		return nil, "", err
	}
	if err := needChat(m, "judges"); err != nil {
		return nil, "", err
	}
	replies := make([]string, len(ls))
	refusal := make([]bool, len(ls))
	for i, l := range ls {
		replies[i], refusal[i] = l.Response, l.Label == judge.LabelRefusal
	}
	mj := judge.Model{Model: m}
	raw, lo, err := judge.FixModel(mj, replies)
	if err != nil {
		return nil, "", err
	}
	var devLO []float64
	var devRefusal []bool
	for i, l := range ls {
		if l.Split == "dev" && !judge.DegenerateText(l.Response) {
			devLO, devRefusal = append(devLO, lo[i]), append(devRefusal, refusal[i])
		}
	}
	threshold := judge.DevThreshold(devLO, devRefusal)
	note := fmt.Sprintf("model judge (%s): AUC of its log-odds for the labelled refusals, all %d replies", m.Alias(), len(ls))
	if auc, ok := judge.AUC(lo, refusal); ok {
		note += fmt.Sprintf(" %.2f (0.5 is chance)", auc)
	} else {
		note += " undefined (no refusal, or nothing else, among these replies)"
	}
	note += fmt.Sprintf("; model-calibrated: threshold %.3g, chosen on the %d dev replies that do not break down", threshold, len(devLO))
	return []judge.Judge{raw, judge.Calibrated(mj, replies, lo, threshold)}, note, nil
}

// printRunVerdicts counts, per judge, the refuses / answers / breaks down
// verdicts on every reply file of a run folder: both modes' responses (all
// of them, kept or not) and each coefficient's sweep completions.
func printRunVerdicts(dir string, judges []judge.Judge) error {
	type file struct{ name, label string }
	files := []file{{runs.RefusalResponsesFile, "refusal mode"}, {runs.CompliantResponsesFile, "compliant mode"}}
	sweeps, _ := filepath.Glob(filepath.Join(dir, "eval_completions_coeff_*.json"))
	slices.SortFunc(sweeps, func(a, b string) int {
		x, _ := strconv.ParseFloat(coeffOf(a), 64)
		y, _ := strconv.ParseFloat(coeffOf(b), 64)
		return cmp.Compare(x, y)
	})
	for _, p := range sweeps {
		files = append(files, file{filepath.Base(p), "sweep c=" + coeffOf(p)})
	}
	fmt.Printf("verdicts on the replies saved in %s\n\n", dir)
	fmt.Println("| replies | n | " + strings.Join(mapNames(judges, "%s: refuses / answers / breaks down"), " | ") + " |")
	fmt.Println("|---|---:|" + strings.Repeat("---|", len(judges)))
	found := 0
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		var replies []struct {
			Response string `json:"response"`
		}
		if err := json.Unmarshal(b, &replies); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		found++
		cells := make([]string, len(judges))
		for i, j := range judges {
			n := map[judge.Verdict]int{}
			for _, r := range replies {
				n[j.Verdict(r.Response)]++
			}
			cells[i] = fmt.Sprintf("%d / %d / %d", n[judge.Refuses], n[judge.Answers], n[judge.BreaksDown])
		}
		fmt.Printf("| %s | %d | %s |\n", f.label, len(replies), strings.Join(cells, " | "))
	}
	if found == 0 {
		return usagef("--run_dir %s holds no response or completion file", dir)
	}
	return nil
}

// coeffOf is the coefficient in an eval_completions_coeff_{c}.json name.
func coeffOf(path string) string {
	return strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "eval_completions_coeff_"), ".json")
}

func mapNames(judges []judge.Judge, format string) []string {
	out := make([]string, len(judges))
	for i, j := range judges {
		out[i] = fmt.Sprintf(format, j.Name())
	}
	return out
}
