#!/usr/bin/env python3
"""W1's abliterated models, as a Markdown section of docs/w1.md (tools/w1.sh).

    python3 tools/w1_abliteration.py RUN_DIR

Reads, for each direction (the refusal vector's row; the harmful-harmless direction):
RUN_DIR's runtime ablation of the source (ablation_summary.json, and its harmful_harmless/
one), the abliterated model's record (../abliterated_<direction>/abliteration.json, with
its --check against runtime ablation) and the ablation run on the abliterated model itself
(../abliterated_<direction>/ablate/ablation_summary.json, whose baseline is that model's
own replies). Fails when a file is missing.
"""

import json
import os
import sys

# heretic's README (p-e-w/heretic), gemma-3-12b-it: refusals of 100 "harmful" prompts and
# the first-token KL from the original model on "harmless" prompts. Another model and other
# prompt sets: beside W1 for scale, not for comparison.
HERETIC = [
    ("google/gemma-3-12b-it (original)", "97/100", "0 (by definition)"),
    ("mlabonne/gemma-3-12b-it-abliterated-v2", "3/100", "1.04"),
    ("huihui-ai/gemma-3-12b-it-abliterated", "3/100", "0.45"),
    ("p-e-w/gemma-3-12b-it-heretic", "3/100", "0.16"),
]


def load(*parts):
    with open(os.path.join(*parts)) as f:
        return json.load(f)


def main(run_dir):
    parent = os.path.dirname(os.path.normpath(run_dir))
    print("## The abliterated models\n")
    print("Each direction projected out of the weights (`refusalkit abliterate --check 100`, "
          "[abliteration.md](abliteration.md)): the written GGUF checked against runtime ablation of the "
          "source on 100 harmless validation instructions, then run on JailbreakBench by itself "
          "(`refusalkit ablate --model_path` the written GGUF: its replies without ablation). Greedy, "
          "64 new tokens, substring judge; first-token KL from the source on the 100 harmless prompts "
          "(heretic's measure); KL and perplexity of the replies to the 20 harmless validation "
          "instructions as `ablate` measures them on the source.\n")
    print("| direction | layer | JailbreakBench refusals: source → abliterated model (runtime ablation) "
          "| first-token KL | harmless KL, perplexity (runtime ablation) | max \\|logit − runtime ablation\\| | GGUF |")
    print("|---|---:|---|---:|---|---:|---:|")
    for direction, sub in (("vector", ""), ("harmful_harmless", "harmful_harmless")):
        src = load(run_dir, sub, "ablation_summary.json")
        abl_dir = os.path.join(parent, "abliterated_" + direction)
        rec = load(abl_dir, "abliteration.json")
        own = load(abl_dir, "ablate", "ablation_summary.json")
        jb = src["jailbreakbench"]
        hl = src["harmless"]["with_ablation"]
        size = os.path.getsize(os.path.join(abl_dir, rec["model"])) / 1e9
        print("| %s | %s | %d → **%d** (%d) / %d | %.4f | %.3f, %.2f → %.2f | %.2g | %.2f GB |" % (
            direction, rec["provenance"]["layer"], jb["without_ablation"]["refusal_count"],
            own["jailbreakbench"]["without_ablation"]["refusal_count"], jb["with_ablation"]["refusal_count"],
            jb["without_ablation"]["total_count"], rec["check"]["first_token_kl"], hl["kl"]["mean"],
            src["harmless"]["without_ablation"]["perplexity"]["mean"], hl["perplexity"]["mean"],
            rec["check"]["max_logit_diff_vs_runtime_ablation"], size))
    print("\nFor scale, heretic's published pairs (another model, 12B, and other prompt sets: "
          "mlabonne/harmful_behaviors and harmless_alpaca):\n")
    print("| model | refusals | KL divergence |")
    print("|---|---:|---:|")
    for row in HERETIC:
        print("| %s | %s | %s |" % row)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
