package refusalkit

import "github.com/refusalkit/refusalkit/refusalkit/judge"

// FilterResponses returns the responses whose substring verdict judge.IsRefusal(r.Response) equals
// wantRefusal, in order: wantRefusal=false keeps truly compliant responses, true keeps true
// refusals. The verdict is recomputed from the text (the IsRefusal field of the input is ignored)
// and stored in the IsRefusal field of the returned copies; the input is not modified. The result
// is never nil, so an empty selection is written as [] in JSON. It is
// FilterResponsesWith(judge.Substring{}, rs, wantRefusal).
func FilterResponses(rs []Response, wantRefusal bool) []Response {
	return FilterResponsesWith(judge.Substring{}, rs, wantRefusal)
}

// FilterResponsesWith returns the responses j reads as wanted, in order:
// wantRefusal=false keeps those it reads as answers, true those it reads as
// refusals (a reply that breaks down is kept on neither side). The verdict
// is recomputed from the text and stored in the IsRefusal field of the
// returned copies; the input is not modified. The result is never nil.
func FilterResponsesWith(j judge.Judge, rs []Response, wantRefusal bool) []Response {
	want := judge.Answers
	if wantRefusal {
		want = judge.Refuses
	}
	out := []Response{}
	for _, r := range rs {
		if j.Verdict(r.Response) == want {
			r.IsRefusal = wantRefusal
			out = append(out, r)
		}
	}
	return out
}

// JudgeResponses sets every response's IsRefusal to j's verdict, in place:
// the response files then say what the run's judge read.
func JudgeResponses(j judge.Judge, rs []Response) {
	for i := range rs {
		rs[i].IsRefusal = j.Verdict(rs[i].Response) == judge.Refuses
	}
}
