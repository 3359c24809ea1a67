#!/usr/bin/env python3
"""Draws the judge's labelled sample from one run folder (stdlib only).

    python3 tools/judge/sample.py RUN_DIR > testdata/judge/sample.jsonl

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


def h(s):
    return hashlib.sha256(s.encode("utf-8")).digest()


def split_of(instruction):
    return "dev" if h("refusalkit-judge-split-v1|" + instruction)[0] < 102 else "heldout"


def main(run_dir):
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
    out = []
    for src, its in items.items():
        n = PER_SOURCE.get(src, PER_COEFFICIENT)
        its.sort(key=lambda it: h("refusalkit-judge-labels-v1|" + it["id"]))
        out.extend(its[:n])
    for it in out:
        it["split"] = split_of(it["instruction"])
        it["label"] = ""
        it["reason"] = ""
        print(json.dumps(it, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1])
