#!/usr/bin/env python3
"""Draws the judge's labelled sample from one run folder (stdlib only).

    python3 tools/judge/sample.py RUN_DIR > testdata/judge/sample.jsonl
    python3 tools/judge/sample.py --w1 RUN_DIR > testdata/judge/w1_sample.jsonl

With --w1 (workload W1, a model that refuses; tools/w1.sh) the draw also
takes JailbreakBench's replies from the folder's ablations: without ablation,
and with each direction ablated (ablation_completions.json in RUN_DIR and in
RUN_DIR/harmful_harmless), with its own counts per source (W1_PER_SOURCE).

RUN_DIR is a finished `extract` + `evaluate` folder (all responses of both
modes, every coefficient's completions). The draw is stratified by source and
seeded by text, not by a random generator, so it reads the same in any
language: within each source, items are ranked by sha256("refusalkit-judge-
labels-v1|" + id) and the first N are taken (N per source below). Each item's
split is fixed by its instruction, so every completion of one instruction
(the ten of a query, or one test instruction at every coefficient) falls on
the same side: "dev" when the first byte of sha256("refusalkit-judge-split-
v1|" + instruction) is below 102 (about 40%), else "heldout". Judges are
designed on dev only; reported numbers are held-out only.

The output has every field but the label and its reason, which a reader adds.
"""
import hashlib
import json
import os
import sys

PER_SOURCE = {"refusal_mode": 60, "compliant_mode": 40}
PER_COEFFICIENT = 12
W1_PER_SOURCE = {"refusal_mode": 40, "compliant_mode": 20, "jailbreakbench": 20,
                 "jailbreakbench ablated refusal_vector": 15, "jailbreakbench ablated harmful_harmless": 15}
W1_PER_COEFFICIENT = 10


def h(s):
    return hashlib.sha256(s.encode("utf-8")).digest()


def split_of(instruction):
    return "dev" if h("refusalkit-judge-split-v1|" + instruction)[0] < 102 else "heldout"


def main(run_dir, w1=False):
    items = {}
    for mode, name in (("refusal_mode", "refusal_responses.json"), ("compliant_mode", "compliant_responses.json")):
        for r in json.load(open(os.path.join(run_dir, name))):
            iid = "%s/q%02d/c%02d" % (mode.split("_")[0], r["query_index"], r["completion_index"])
            items.setdefault(mode, []).append({"id": iid, "source": mode, "coefficient": None,
                                               "instruction": r["instruction"], "response": r["response"]})
    summary = json.load(open(os.path.join(run_dir, "eval_summary.json")))
    for c in summary["coefficients"]:
        key = repr(float(c))
        src = "sweep c=" + key
        for i, r in enumerate(json.load(open(os.path.join(run_dir, "eval_completions_coeff_%s.json" % key)))):
            items.setdefault(src, []).append({"id": "sweep/c%s/t%02d" % (key, i), "source": src, "coefficient": float(c),
                                              "instruction": r["instruction"], "response": r["response"]})
    if w1:
        for sub, tag in (("", "refusal_vector"), ("harmful_harmless", "harmful_harmless")):
            path = os.path.join(run_dir, sub, "ablation_completions.json")
            sets = json.load(open(path))["jailbreakbench"]
            halves = [("with_ablation", "jailbreakbench ablated " + tag, "jbb-ablated-%s" % tag)]
            if tag == "refusal_vector":  # the model's own behaviour, once
                halves.insert(0, ("without_ablation", "jailbreakbench", "jbb"))
            for half, src, prefix in halves:
                for i, r in enumerate(sets[half]):
                    items.setdefault(src, []).append({"id": "%s/t%02d" % (prefix, i), "source": src, "coefficient": None,
                                                      "instruction": r["instruction"], "response": r["response"]})
    per_source, per_coefficient = (W1_PER_SOURCE, W1_PER_COEFFICIENT) if w1 else (PER_SOURCE, PER_COEFFICIENT)
    out = []
    for src, its in items.items():
        n = per_source.get(src, per_coefficient)
        its.sort(key=lambda it: h("refusalkit-judge-labels-v1|" + it["id"]))
        out.extend(its[:n])
    for it in out:
        it["split"] = split_of(it["instruction"])
        it["label"] = ""
        it["reason"] = ""
        print(json.dumps(it, ensure_ascii=False))


if __name__ == "__main__":
    args = sys.argv[1:]
    w1 = "--w1" in args
    main([a for a in args if a != "--w1"][0], w1)
