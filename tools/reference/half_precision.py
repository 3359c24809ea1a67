"""transformers' own bfloat16 and float16 logits against its float32 ones
on the conformance suite's folders (testdata/reference/families), with the
metric of models/dtype_test.go: max |Δlogit| over the vocabulary, divided by
the float32 run's max |logit| at that position, worst over every position of
every sequence. It calibrates the tests' half-precision tolerances.

    .cache/pyref/bin/python tools/reference/half_precision.py
"""
import json

import torch
from transformers import AutoModelForCausalLM

manifest = json.load(open("testdata/reference/families/manifest.json"))
for case in manifest["cases"]:
    ref = json.load(open(case["reference"]))
    logits = {}
    for dt in (torch.float32, torch.bfloat16, torch.float16):
        model = AutoModelForCausalLM.from_pretrained(case["hf"], dtype=dt, attn_implementation="eager").eval()
        with torch.no_grad():
            logits[dt] = [model(torch.tensor([s["input_ids"]])).logits[0].float() for s in ref["sequences"]]
    row = [case["name"]]
    for dt in (torch.bfloat16, torch.float16):
        worst = max(((a - b).abs().max(-1).values / a.abs().max(-1).values).max().item()
                    for a, b in zip(logits[torch.float32], logits[dt]))
        row.append(f"{str(dt)[6:]} {worst:.3g}")
    print(" | ".join(row), flush=True)
