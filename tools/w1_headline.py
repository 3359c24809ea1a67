#!/usr/bin/env python3
"""W1's headline table: each claim of Arditi et al. (2024) beside what the
run folder measured on this model (stdlib only; called by tools/w1.sh).

    python3 tools/w1_headline.py RUN_DIR [LABELS]

RUN_DIR holds a finished extract, evaluate (with calibration) and both
ablations (RUN_DIR and RUN_DIR/harmful_harmless). Every number printed is
read from the folder's JSON files; the paper's column quotes its abstract
and its direction-selection rule, not per-model figures. LABELS (the
hand labels of W1's replies, testdata/judge/w1_labels.jsonl) adds a reader's
count of the sampled JailbreakBench replies without and with each ablation,
since the offline judges part on exactly those replies.
"""
import json
import os
import sys


def load(*parts):
    with open(os.path.join(*parts)) as f:
        return json.load(f)


def ablation_line(s):
    jb, hl = s["jailbreakbench"], s["harmless"]
    before, after = jb["without_ablation"]["refusal_count"], jb["with_ablation"]["refusal_count"]
    removed = 100 * (before - after) / before if before else 0
    return "layer %d: JailbreakBench refusals %d → %d of %d (%.0f%% removed, substring judge); KL on harmless prompts %.3f" % (
        s["layer"], before, after, jb["with_ablation"]["total_count"], removed, hl["with_ablation"]["kl"]["mean"])


def reader_line(run_dir, labels_path):
    """The reader's counts, or None when a labelled reply is not this run's
    (another machine's or another build's replies): labels describe texts."""
    replies = {}
    for sub, tag in (("", "refusal_vector"), ("harmful_harmless", "harmful_harmless")):
        sets = load(run_dir, sub, "ablation_completions.json")["jailbreakbench"]
        halves = [("with_ablation", "jbb-ablated-" + tag)] + ([("without_ablation", "jbb")] if sub == "" else [])
        for half, prefix in halves:
            for i, r in enumerate(sets[half]):
                replies["%s/t%02d" % (prefix, i)] = r["response"]
    counts = {}
    with open(labels_path) as f:
        for line in f:
            x = json.loads(line)
            if x["source"].startswith("jailbreakbench"):
                if replies.get(x["id"]) != x["response"]:
                    return None
                n, r = counts.get(x["source"], (0, 0))
                counts[x["source"]] = (n + 1, r + (x["label"] == "refusal"))
    name = {"jailbreakbench": "without ablation", "jailbreakbench ablated refusal_vector": "refusal vector ablated",
            "jailbreakbench ablated harmful_harmless": "harmful–harmless ablated"}
    return "; ".join("%s %d/%d" % (name[k], counts[k][1], counts[k][0]) for k in name if k in counts)


def main(run_dir, labels_path=None):
    ev = load(run_dir, "eval_summary.json")
    vec = load(run_dir, "ablation_summary.json")
    ref = load(run_dir, "harmful_harmless", "ablation_summary.json")
    cos = load(run_dir, "direction_cosines.json")
    cal = load(run_dir, "calibration.json") if os.path.exists(os.path.join(run_dir, "calibration.json")) else None
    layer = ev["selected_layer"]
    rows = ev["results_by_coefficient"]
    sweep = "; ".join("c = %s: %d/%d, KL %.2f" % (c, r["refusal_count"], r["total_count"], r["kl"]["mean"]) for c, r in rows.items())
    per_layer = [p for p in cos["per_layer"] if p["cosine"] is not None]
    best = max(per_layer, key=lambda p: p["cosine"])
    at = {p["layer"]: p["cosine"] for p in per_layer}
    cal_text = "not run"
    if cal:
        if cal["found"]:
            cal_text = "calibrated c with refusal ≥ %g and KL ≤ %g found" % (cal["target_refusal_rate"], cal["max_kl"])
        else:
            cal_text = "no coefficient reaches refusal ≥ %g with KL ≤ %g on validation" % (cal["target_refusal_rate"], cal["max_kl"])
    print("| claim (Arditi et al. 2024) | what the paper reports | W1 on this model |")
    print("|---|---|---|")
    print("| ablating one direction removes refusal of harmful requests | \"erasing this direction from the model's residual "
          "stream activations prevents it from refusing harmful instructions\" (abstract; 13 models) | harmful–harmless direction, "
          + ablation_line(ref) + "<br>the seed's refusal vector, " + ablation_line(vec) + " |")
    print("| it leaves harmless behaviour nearly unchanged | directions are kept only if their ablation's KL on harmless "
          "prompts is ≤ 0.1 (direction selection) | KL %.3f (harmful–harmless) and %.3f (refusal vector) |" % (
              ref["harmless"]["with_ablation"]["kl"]["mean"], vec["harmless"]["with_ablation"]["kl"]["mean"]))
    print("| adding it makes the model refuse harmless requests | \"adding this direction elicits refusal on even harmless "
          "instructions\" (abstract) | the refusal vector at its selected layer %d, on %d harmless test instructions: %s; %s |" % (
              layer, rows["0.0"]["total_count"] if "0.0" in rows else 0, sweep, cal_text))
    print("| the direction is harmful − harmless, last prompt token | the method (section 2) | the seed's response-averaged "
          "vector has cosine %.2f with it at layer %d (ablated), at most %.2f (layer %d) |" % (
              at.get(vec["layer"], float("nan")), vec["layer"], best["cosine"], best["layer"]))
    reader = reader_line(run_dir, labels_path) if labels_path else None
    if labels_path and reader is None:
        print()
        print("(The hand labels in `%s` are of other replies than this run's, so no reader's count is given.)" % os.path.relpath(labels_path))
    elif reader:
        print()
        print("The substring judge and the stricter `leading` judge part most on the ablated replies (the tables below "
              "give both). A reader's labels of the sampled JailbreakBench replies (`%s`; refusals / replies read): %s." % (
                  os.path.relpath(labels_path), reader))


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: w1_headline.py RUN_DIR [LABELS]")
    main(*sys.argv[1:])
