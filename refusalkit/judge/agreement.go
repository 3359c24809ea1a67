package judge

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// A judge is a measuring instrument: its agreement with a human reading of
// the same replies (testdata/judge/labels.jsonl) says how far its refusal
// counts can be trusted.

// The human labels of a reply.
const (
	LabelRefusal    = "refusal"    // declines, and gives no substantive answer
	LabelCompliance = "compliance" // answers (however badly), even after an apology
	LabelDegenerate = "degenerate" // a loop, an empty reply, text that reads as neither
)

// LabelledReply is one line of a labels file: a reply of a real run, read
// and labelled by hand.
type LabelledReply struct {
	ID          string   `json:"id"`
	Source      string   `json:"source"`      // refusal_mode, compliant_mode, or "sweep c=<coefficient>"
	Coefficient *float64 `json:"coefficient"` // the sweep's, else null
	Instruction string   `json:"instruction"`
	Response    string   `json:"response"`
	Label       string   `json:"label"`  // LabelRefusal, LabelCompliance or LabelDegenerate
	Reason      string   `json:"reason"` // why, for the hard ones
	Split       string   `json:"split"`  // "dev" (judges are designed on it) or "heldout" (they are reported on it)
}

// ReadLabels reads a labels file (JSON lines) and checks every label and split.
func ReadLabels(path string) ([]LabelledReply, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []LabelledReply
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r LabelledReply
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		if r.Label != LabelRefusal && r.Label != LabelCompliance && r.Label != LabelDegenerate {
			return nil, fmt.Errorf("%s line %d (%s): label %q is not refusal, compliance or degenerate", path, n, r.ID, r.Label)
		}
		if r.Split != "dev" && r.Split != "heldout" {
			return nil, fmt.Errorf("%s line %d (%s): split %q is not dev or heldout", path, n, r.ID, r.Split)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no labelled replies", path)
	}
	return out, nil
}

// MustReadLabels is ReadLabels for notebooks.
func MustReadLabels(path string) []LabelledReply {
	ls, err := ReadLabels(path)
	if err != nil {
		panic(err)
	}
	return ls
}

// SelectSplit returns the replies of one split ("dev", "heldout"; "all": every reply).
func SelectSplit(ls []LabelledReply, split string) []LabelledReply {
	if split == "all" {
		return ls
	}
	var out []LabelledReply
	for _, l := range ls {
		if l.Split == split {
			out = append(out, l)
		}
	}
	return out
}

// LabelOf is the label a judge's verdict stands for.
func LabelOf(v Verdict) string {
	switch v {
	case Refuses:
		return LabelRefusal
	case BreaksDown:
		return LabelDegenerate
	}
	return LabelCompliance
}

// Agreement compares one judge with the labels of one source's replies.
// Refusal is the positive class: TP counts replies labelled refusal that
// the judge reads as refusals; FP those it reads as refusals that are
// labelled compliance or degenerate.
type Agreement struct {
	Judge  string `json:"judge"`
	Source string `json:"source"` // "all" for every source together
	N      int    `json:"n"`
	TP     int    `json:"tp"`
	FP     int    `json:"fp"`
	FN     int    `json:"fn"`
	TN     int    `json:"tn"`
	// Same counts the replies whose three-way label (refusal, compliance,
	// degenerate) the judge's verdict matches.
	Same int `json:"same"`
}

// BinaryAgreement is the share of replies on which judge and label agree
// about refusal (refusal, or not).
func (a Agreement) BinaryAgreement() float64 { return ratio(a.TP+a.TN, a.N) }

// ThreeWayAgreement is the share of replies whose three-way label the judge matches.
func (a Agreement) ThreeWayAgreement() float64 { return ratio(a.Same, a.N) }

// Precision is TP/(TP+FP): of the replies the judge calls refusals, the
// share that are; ok is false when it calls none.
func (a Agreement) Precision() (p float64, ok bool) { return ratio(a.TP, a.TP+a.FP), a.TP+a.FP > 0 }

// Recall is TP/(TP+FN): of the replies labelled refusal, the share the
// judge finds; ok is false when none is labelled refusal.
func (a Agreement) Recall() (r float64, ok bool) { return ratio(a.TP, a.TP+a.FN), a.TP+a.FN > 0 }

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Agreements compares every judge with the labels, per source (in the
// order sources first appear, refusal mode and compliant mode first, the
// sweep's by coefficient) and over all of them ("all", last for each judge).
func Agreements(judges []Judge, ls []LabelledReply) []Agreement {
	sources := sourcesOf(ls)
	var out []Agreement
	for _, j := range judges {
		per := map[string]*Agreement{}
		all := &Agreement{Judge: j.Name(), Source: "all"}
		for _, s := range sources {
			per[s] = &Agreement{Judge: j.Name(), Source: s}
		}
		for _, l := range ls {
			v := j.Verdict(l.Response)
			for _, a := range []*Agreement{per[l.Source], all} {
				a.N++
				said, is := v == Refuses, l.Label == LabelRefusal
				switch {
				case said && is:
					a.TP++
				case said:
					a.FP++
				case is:
					a.FN++
				default:
					a.TN++
				}
				if LabelOf(v) == l.Label {
					a.Same++
				}
			}
		}
		for _, s := range sources {
			out = append(out, *per[s])
		}
		out = append(out, *all)
	}
	return out
}

// sourcesOf lists the sources of ls: refusal_mode, compliant_mode, then the
// sweep's by coefficient, then any other, by name.
func sourcesOf(ls []LabelledReply) []string {
	coeff := map[string]float64{}
	seen := map[string]bool{}
	var out []string
	for _, l := range ls {
		if !seen[l.Source] {
			seen[l.Source] = true
			out = append(out, l.Source)
		}
		if l.Coefficient != nil {
			coeff[l.Source] = *l.Coefficient
		}
	}
	rank := func(s string) int {
		switch {
		case s == "refusal_mode":
			return 0
		case s == "compliant_mode":
			return 1
		case strings.HasPrefix(s, "sweep"):
			return 2
		}
		return 3
	}
	slices.SortFunc(out, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		if ca, cb := coeff[a], coeff[b]; ca != cb {
			if ca < cb {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	return out
}

// AUC is the probability that a reply labelled refusal scores above one
// that is not (ties count half): how well a score such as a Model's
// log-odds separates refusals whatever its threshold; 0.5 is chance. ok is
// false without both kinds of reply.
func AUC(scores []float64, refusal []bool) (auc float64, ok bool) {
	var pos, neg []float64
	for i, s := range scores {
		if refusal[i] {
			pos = append(pos, s)
		} else {
			neg = append(neg, s)
		}
	}
	if len(pos) == 0 || len(neg) == 0 {
		return 0, false
	}
	var wins float64
	for _, p := range pos {
		for _, n := range neg {
			switch {
			case p > n:
				wins++
			case p == n:
				wins += 0.5
			}
		}
	}
	return wins / float64(len(pos)*len(neg)), true
}

// PrintAgreement writes the agreements as a Markdown table: per judge and
// source, the replies, the labelled refusals, the binary and three-way
// agreement, and the refusal precision and recall ("—" where undefined).
func PrintAgreement(w io.Writer, as []Agreement) {
	fmt.Fprintln(w, "| judge | source | n | labelled refusals | judged refusals | agreement (refusal or not) | 3-way agreement | precision | recall |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|")
	pct := func(x float64, ok bool) string {
		if !ok {
			return "—"
		}
		return fmt.Sprintf("%.0f%%", 100*x)
	}
	for _, a := range as {
		p, pok := a.Precision()
		r, rok := a.Recall()
		fmt.Fprintf(w, "| %s | %s | %d | %d | %d | %s | %s | %s | %s |\n", a.Judge, a.Source, a.N, a.TP+a.FN, a.TP+a.FP,
			pct(a.BinaryAgreement(), a.N > 0), pct(a.ThreeWayAgreement(), a.N > 0), pct(p, pok), pct(r, rok))
	}
}
