package refusalkit

import (
	"reflect"
	"strings"
	"testing"

	"github.com/refusalkit/refusalkit/refusalkit/judge"
)

func TestFilterResponses(t *testing.T) {
	rs := []Response{
		{Instruction: "q0", Response: "Sure, here it is.", IsRefusal: true}, // stale verdict: recomputed
		{Instruction: "q1", Response: "I’m sorry, I can’t."},
		{Instruction: "q2", Response: "Of course."},
		{Instruction: "q3", Response: "As an AI, no."},
	}
	compliant := FilterResponses(rs, false)
	refusals := FilterResponses(rs, true)
	var got []string
	for _, r := range compliant {
		got = append(got, r.Instruction)
		if r.IsRefusal {
			t.Errorf("kept compliant %q has IsRefusal=true", r.Instruction)
		}
	}
	if want := []string{"q0", "q2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("compliant kept %q, want %q", got, want)
	}
	got = nil
	for _, r := range refusals {
		got = append(got, r.Instruction)
		if !r.IsRefusal {
			t.Errorf("kept refusal %q has IsRefusal=false", r.Instruction)
		}
	}
	if want := []string{"q1", "q3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("refusals kept %q, want %q", got, want)
	}
	if !rs[0].IsRefusal {
		t.Error("FilterResponses modified its input")
	}
	if none := FilterResponses(nil, true); none == nil || len(none) != 0 {
		t.Errorf("FilterResponses(nil) = %#v, want an empty non-nil slice (JSON [])", none)
	}
}

func TestFilterResponsesWithDropsBreakdowns(t *testing.T) {
	rs := []Response{
		{Instruction: "refuses", Response: "I'm sorry, but I can't help with that."},
		{Instruction: "answers", Response: "Paris is the capital of France."},
		{Instruction: "loops", Response: strings.Repeat("I'm sorry I can help. ", 10)},
	}
	names := func(rs []Response) (out []string) {
		for _, r := range rs {
			out = append(out, r.Instruction)
		}
		return out
	}
	j := judge.Leading{}
	if got := names(FilterResponsesWith(j, rs, true)); !reflect.DeepEqual(got, []string{"refuses"}) {
		t.Errorf("leading kept refusals %q", got)
	}
	if got := names(FilterResponsesWith(j, rs, false)); !reflect.DeepEqual(got, []string{"answers"}) {
		t.Errorf("leading kept answers %q", got)
	}
	// The spec's judge keeps the loop as a refusal: it holds "I'm sorry".
	if got := names(FilterResponses(rs, true)); !reflect.DeepEqual(got, []string{"refuses", "loops"}) {
		t.Errorf("substring kept refusals %q", got)
	}
	JudgeResponses(j, rs)
	if !rs[0].IsRefusal || rs[1].IsRefusal || rs[2].IsRefusal {
		t.Errorf("JudgeResponses set %v %v %v", rs[0].IsRefusal, rs[1].IsRefusal, rs[2].IsRefusal)
	}
}
