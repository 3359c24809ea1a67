package runs

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/judge"
)

// ReportOptions are WriteReport's choices.
type ReportOptions struct {
	Title string // the report's heading; "" = the model's alias
	// Charts, when set, is the folder (as the report's reader reaches it)
	// that holds the run's charts as pictures (tools/screenshot_charts.sh),
	// shown under their sections.
	Charts string
	// Command is the command that made the report, printed under the title.
	Command string
}

// WriteReport writes a Markdown report of what a run folder holds: the
// extraction's kept counts, every judge's reading of the baselines, the
// layer selection, the coefficient sweep with its side effects and
// outcomes, the calibrated coefficient or else the Pareto front of refusal
// rate against KL, the cosine of the vector with the harmful–harmless
// direction at every layer, and each ablation (the refusal vector's, in the
// folder; the harmful–harmless direction's, in its harmful_harmless
// subfolder). A stage the folder does not hold is left out; a folder
// without a finished extraction is refused.
func WriteReport(w io.Writer, dir string, opts ReportOptions) error {
	var md Metadata
	if err := ReadJSON(filepath.Join(dir, MetadataFile), &md); err != nil {
		return err
	}
	if !md.Complete {
		return fmt.Errorf("%s holds no finished extraction (metadata.json says complete: false): finish it with extract --resume", dir)
	}
	x, err := ReadExtraction(dir)
	if err != nil {
		return err
	}
	rd := &Run{Dir: dir}
	var ev *refusalkit.Evaluation
	if rd.has(EvalSummaryFile) {
		if ev, err = rd.Evaluation(); err != nil {
			return err
		}
	}
	ablations := map[string]*refusalkit.Ablation{}
	for _, d := range []string{dir, filepath.Join(dir, refusalkit.DirectionHarmfulHarmless)} {
		r := &Run{Dir: d}
		if !r.has(AblationSummaryFile) {
			continue
		}
		ab, err := r.Ablation()
		if err != nil {
			return err
		}
		ablations[cmp.Or(ab.Summary.Direction, "refusal_vector")] = ab
	}
	var dc *refusalkit.DirectionCosines
	if rd.has(DirectionCosinesFile) {
		if dc, err = rd.DirectionCosines(); err != nil {
			return err
		}
	}
	judges := make([]judge.Judge, len(judge.Names))
	for i, n := range judge.Names {
		judges[i] = judge.Must(n)
	}

	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## %s\n\n", cmp.Or(opts.Title, md.ModelAlias))
	if opts.Command != "" {
		p("Made by `%s`. ", opts.Command)
	}
	// The file's name, not its path: the path is this machine's.
	p("Model %s (`%s`), %s on %s; seed %d; %d queries × %d completions × 2 modes, %d new tokens, judge %s.\n\n",
		md.ModelAlias, filepath.Base(md.ModelPath), md.DType, md.Backend, md.Seed, md.NQueries, md.NCompletionsPerQuery, md.MaxNewTokens, x.Config.Judge)
	picture := func(name, caption string) {
		if opts.Charts == "" {
			return
		}
		if _, err := os.Stat(filepath.Join(opts.Charts, name+".png")); err == nil {
			p("![%s](%s)\n\n", caption, filepath.ToSlash(filepath.Join(opts.Charts, name+".png")))
		}
	}

	// Baselines by every judge: what the model does unsteered.
	p("### What the model does unsteered, by each judge\n\n")
	p("refuses / answers / breaks down, of the replies:\n\n")
	p("| replies | n | %s |\n|---|---:|%s\n", strings.Join(judgeNames(judges), " | "), strings.Repeat("---|", len(judges)))
	verdicts := func(label string, replies []string) {
		if len(replies) == 0 {
			return
		}
		cells := make([]string, len(judges))
		for i, j := range judges {
			n := map[judge.Verdict]int{}
			for _, r := range replies {
				n[j.Verdict(r)]++
			}
			cells[i] = fmt.Sprintf("%d / %d / %d", n[judge.Refuses], n[judge.Answers], n[judge.BreaksDown])
		}
		p("| %s | %d | %s |\n", label, len(replies), strings.Join(cells, " | "))
	}
	if ab := ablations["refusal_vector"]; ab != nil {
		verdicts("JailbreakBench requests (greedy)", evalReplies(ab.Sets[refusalkit.SetJailbreakBench].Baseline))
	} else if ab := ablations[refusalkit.DirectionHarmfulHarmless]; ab != nil {
		verdicts("JailbreakBench requests (greedy)", evalReplies(ab.Sets[refusalkit.SetJailbreakBench].Baseline))
	}
	if ev != nil {
		verdicts("harmless test instructions (greedy, c = 0)", evalReplies(ev.Completions[0]))
	}
	verdicts("compliant mode (sampled)", responseTexts(x.Compliant))
	verdicts("refusal mode (sampled, the refusal instruction)", responseTexts(x.Refusal))
	p("\n")

	p("### The refusal vector\n\n")
	p("Kept by the %s judge: %d of %d compliant responses (%.2f), %d of %d refusal-mode responses (%.2f); vector shape %v.\n\n",
		x.Config.Judge, md.NCompliantResponsesKept, md.NCompliantResponsesGenerated, md.CompliantFilterRate,
		md.NRefusalResponsesKept, md.NRefusalResponsesGenerated, md.RefusalFilterRate, md.VectorShape)
	picture(ChartVectorNorms, "vector norm per layer")

	if ev != nil {
		s := ev.Summary
		p("### Layer selection and the coefficient sweep\n\n")
		p("Selected layer **%d** (%s) on %d validation instructions: steering score %.3f against a baseline of %.3f.",
			s.SelectedLayer, s.LayerSelectionMethod, s.NValidationSamples, s.SelectedLayerSteeringScore, s.BaselineRefusalScore)
		if len(ev.Scores.PerLayerScores) > 0 && ev.Scores.PerLayerScores[0].KL != nil {
			p(" KL at c = 1 there: %.3f.", *ev.Scores.PerLayerScores[0].KL)
		}
		p(" The five best layers:")
		for _, l := range ev.Scores.PerLayerScores[:min(5, len(ev.Scores.PerLayerScores))] {
			p(" %d (%.3f)", l.Layer, l.SteeringScore)
		}
		p(".\n\n")
		picture(ChartLayerScores, "steering score per layer")
		p("Sweep on %d held-out test instructions (greedy, %d new tokens), row %d added at every position:\n\n", s.NTestSamples, s.MaxNewTokens, s.SelectedLayer)
		method, _, _ := strings.Cut(s.Judge, ";")
		p("| c | refusal (%s) | leading judge | refuses / answers / breaks down | KL mean | KL max | perplexity | degenerate |\n", method)
		p("|---:|---:|---:|---|---:|---:|---:|---:|\n")
		leading := judge.Must("leading")
		for _, c := range sortedCoefficients(ev) {
			r := s.ResultsByCoefficient[refusalkit.CoeffKey(c)]
			n := 0
			for _, comp := range ev.Completions[c] {
				if leading.Verdict(comp.Response) == judge.Refuses {
					n++
				}
			}
			mark := ""
			if s.CalibratedCoefficient != nil && *s.CalibratedCoefficient == c {
				mark = " (calibrated)"
			}
			p("| %g%s | %d/%d (%.2f) | %d/%d | %d / %d / %d | %.3f | %.3f | %.2f | %d |\n", c, mark, r.RefusalCount, r.TotalCount, r.RefusalRate,
				n, len(ev.Completions[c]), r.Outcomes.Refuses, r.Outcomes.Answers, r.Outcomes.BreaksDown, r.KL.Mean, r.KL.Max, r.Perplexity.Mean, r.DegenerateCount)
		}
		p("\n")
		picture(ChartRefusalRates, "refusal rate per coefficient")
		picture(ChartSideEffects, "side effects per coefficient")
		if cal := ev.Calibration; cal != nil {
			p("**Calibration** (validation split, target refusal ≥ %.2f with KL ≤ %.2f): ", cal.TargetRefusalRate, cal.MaxKL)
			if cal.Found {
				p("c = %g. %s\n\n", cal.Coefficient, cal.Reason)
			} else {
				p("none found: %s. The Pareto front of the points tried (no other point refuses more with less KL):\n\n", cal.Reason)
				p("| c | refusal rate | KL |\n|---:|---:|---:|\n")
				for _, pt := range paretoFront(cal.Points) {
					p("| %g | %.2f | %.3f |\n", pt.Coefficient, pt.RefusalRate, pt.KL)
				}
				p("\n")
			}
		}
	}

	if dc != nil {
		p("### The refusal vector against the harmful–harmless direction\n\n")
		p("Cosine per layer with %s (%d %s requests − %d %s instructions, last prompt token):\n\n",
			"the reference direction", dc.NHarmful, dc.HarmfulSource, dc.NHarmless, dc.HarmlessDataset)
		p("| layer | %s |\n|---|%s\n", strings.Join(layerNumbers(len(dc.PerLayer)), " | "), strings.Repeat("---:|", len(dc.PerLayer)))
		cells := make([]string, len(dc.PerLayer))
		for i, e := range dc.PerLayer {
			cells[i] = "–"
			if e.Cosine != nil {
				cells[i] = fmt.Sprintf("%.2f", *e.Cosine)
			}
		}
		p("| cosine | %s |\n\n", strings.Join(cells, " | "))
		picture(ChartDirectionCosine, "cosine with the harmful–harmless direction per layer")
	}

	if len(ablations) > 0 {
		p("### Directional ablation\n\n")
		p("Each direction's unit row removed from every block input and every attention and MLP output (greedy, %d new tokens). Refusals by each judge, without → with ablation; KL against the model without ablation:\n\n",
			firstAblation(ablations).Summary.MaxNewTokens)
		p("| direction | layer | prompt set | %s | KL mean | perplexity |\n|---|---:|---|%s---:|---:|\n",
			strings.Join(judgeNames(judges), " | "), strings.Repeat("---|", len(judges)))
		for _, name := range []string{"refusal_vector", refusalkit.DirectionHarmfulHarmless} {
			ab := ablations[name]
			if ab == nil {
				continue
			}
			for _, set := range []string{refusalkit.SetJailbreakBench, refusalkit.SetInducedRefusal, refusalkit.SetHarmless} {
				st := ab.Sets[set]
				cells := make([]string, len(judges))
				for i, j := range judges {
					cells[i] = fmt.Sprintf("%d → %d / %d", countRefusals(j, st.Baseline), countRefusals(j, st.Ablated), len(st.Ablated))
				}
				t := refusalkit.Tally(st.Ablated)
				p("| %s | %d | %s | %s | %.3f | %.2f → %.2f |\n", name, ab.Summary.Layer, set, strings.Join(cells, " | "),
					t.KL.Mean, refusalkit.Tally(st.Baseline).Perplexity.Mean, t.Perplexity.Mean)
			}
		}
		p("\n")
		for _, name := range []string{"refusal_vector", refusalkit.DirectionHarmfulHarmless} {
			ab := ablations[name]
			if ab == nil {
				continue
			}
			s := ab.Summary
			before, after := s.JailbreakBench.Baseline.RefusalCount, s.JailbreakBench.Ablated.RefusalCount
			kl := s.Harmless.Ablated.KL.Mean
			if before == 0 {
				p("- %s (layer %d): the model refuses none of the JailbreakBench requests (%s judge), so there is no refusal to remove; harmless KL %.3f.\n",
					name, s.Layer, judge.Default, kl)
				continue
			}
			removed := float64(before-after) / float64(before)
			verdict := "does not meet"
			if removed >= 0.5 && kl <= 0.1 {
				verdict = "meets"
			}
			p("- %s (layer %d): %.0f%% of the JailbreakBench refusals removed (%d → %d, %s judge) at harmless KL %.3f: %s the goal of half the refusals removed at KL ≤ 0.1.\n",
				name, s.Layer, 100*removed, before, after, judge.Default, kl, verdict)
		}
		p("\n")
		picture(ChartAblationRates, "refusal rates without and with ablation")
	}
	return nil
}

func judgeNames(js []judge.Judge) []string {
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = j.Name()
	}
	return out
}

func evalReplies(cs []refusalkit.EvalCompletion) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Response
	}
	return out
}

func responseTexts(rs []refusalkit.Response) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Response
	}
	return out
}

func countRefusals(j judge.Judge, cs []refusalkit.EvalCompletion) int {
	n := 0
	for _, c := range cs {
		if j.Verdict(c.Response) == judge.Refuses {
			n++
		}
	}
	return n
}

func sortedCoefficients(ev *refusalkit.Evaluation) []float64 {
	cs := slices.Clone(ev.Summary.Coefficients)
	slices.Sort(cs)
	return slices.Compact(cs)
}

func layerNumbers(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(i)
	}
	return out
}

func firstAblation(abs map[string]*refusalkit.Ablation) *refusalkit.Ablation {
	if ab := abs["refusal_vector"]; ab != nil {
		return ab
	}
	return abs[refusalkit.DirectionHarmfulHarmless]
}

// paretoFront keeps the points no other point dominates (a refusal rate at
// least as high with a KL at most as low, one of them strictly), by KL.
func paretoFront(pts []refusalkit.CalibrationPoint) []refusalkit.CalibrationPoint {
	var out []refusalkit.CalibrationPoint
	for _, a := range pts {
		dominated := slices.ContainsFunc(pts, func(b refusalkit.CalibrationPoint) bool {
			return b.RefusalRate >= a.RefusalRate && b.KL <= a.KL && (b.RefusalRate > a.RefusalRate || b.KL < a.KL)
		})
		if !dominated && !slices.ContainsFunc(out, func(o refusalkit.CalibrationPoint) bool { return o == a }) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b refusalkit.CalibrationPoint) int { return cmp.Compare(a.KL, b.KL) })
	return out
}
