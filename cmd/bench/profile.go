package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/refusalkit/refusalkit/refusalkit"
)

// profilePhases are refusalkit's W0 stages in the order they run, as the
// extraction and the evaluation name them.
var profilePhases = []string{"generate_compliant", "generate_refusal", "activations",
	"layer_selection", "validation_side_effects", "coefficient_sweep"}

// printProfile writes where each W0 stage's time went (models.Stats):
// compilations, program runs, prompt passes and decoding steps with the
// rows they wasted, teacher-forced passes, copies to the host, sampling,
// and the rest (Go-side work: tokenizing, judging, building inputs).
func printProfile(w io.Writer, x *refusalkit.Extraction, ev *refusalkit.Evaluation) {
	w = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "stage\twall s\tcompiles\tcompile s\truns\trun s\tprefills\tprefill pad\tdecode steps\tdecode rows\tidle rows\tdecode s\tpasses\tpass pad\tto host MB\tto host s\tsample s\tother s\t\n")
	for _, p := range profilePhases {
		wall, s, ok := x.Timings[p], x.Profile[p], true
		if _, in := x.Timings[p]; !in {
			wall, ok = ev.Summary.TimingsSeconds[p]
			s = ev.Profile[p]
		}
		if !ok {
			continue
		}
		other := wall - s.CompileTime.Seconds() - s.RunTime.Seconds() - s.ToHostTime.Seconds() - s.SampleTime.Seconds()
		fmt.Fprintf(w, "%s\t%.1f\t%d\t%.1f\t%d\t%.1f\t%d\t%s\t%d\t%d\t%s\t%.1f\t%d\t%s\t%.0f\t%.2f\t%.2f\t%.1f\t\n",
			p, wall, s.Compilations, s.CompileTime.Seconds(), s.Runs, s.RunTime.Seconds(),
			s.Prefills, share(s.PrefillPadding, s.PrefillPositions), s.DecodeSteps, s.DecodeRows,
			share(s.DecodeIdle, s.DecodeRows), s.DecodeTime.Seconds(), s.Passes, share(s.PassPadding, s.PassPositions),
			float64(s.ToHostBytes)/(1<<20), s.ToHostTime.Seconds(), s.SampleTime.Seconds(), other)
	}
	w.(*tabwriter.Writer).Flush()
}

// share formats part/whole as a percentage ("-" for nothing).
func share(part, whole int) string {
	if whole == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(part)/float64(whole))
}
