#!/usr/bin/env python3
"""Transformers' logits of the tiny family checkpoints abliterated in PyTorch.

For every family case of testdata/reference/families whose blocks add their outputs to the
residual stream unnormalised (post-norm families, Gemma 2/3 and OLMo 2, are left out: no
exact abliteration exists for them and refusalkit refuses them), this loads the Hugging
Face folder with AutoModelForCausalLM (float32, eager attention), draws a seeded random
direction r of d_model values, and orthogonalises the weights in torch, independently of
refusalkit's code:

    W <- W - r r^T W   for every block's o_proj and down_proj weight (and bias: b - (b.r) r)
    E <- E - (E r) r^T for the token embeddings
    a tied LM head is untied first, keeping the original embeddings

It writes, per case, testdata/reference/abliterated/<case>.json: the direction, the token
sequences (each reference sequence's first half and whole) and the last-position logits
of each. refusalkit's test (refusalkit/abliterate) writes the same abliteration with its
own code, loads it back, and compares.

    bash tools/setup/pyref.sh && .cache/pyref/bin/python tools/reference/make_abliterated.py

With --check_written DIR it instead loads DIR/<case> (the folders refusalkit wrote, kept
by REFUSALKIT_ABLITERATED_OUT=DIR go test ./refusalkit/abliterate/) with
AutoModelForCausalLM and compares their logits with the ones above: transformers itself
loads what refusalkit writes (`make abliterate-check`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = ROOT / "testdata" / "reference" / "families"
OUT = ROOT / "testdata" / "reference" / "abliterated"
POST_NORM = {"gemma2", "gemma3_text", "gemma3", "olmo2"}
SEED = 20261207
TOLERANCE = 1e-4


def load(folder: Path):
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()


def abliterate(model, r: torch.Tensor) -> None:
    """Projects the unit direction r (float64) out of every residual writer, in place."""
    with torch.no_grad():
        emb = model.get_input_embeddings()
        if model.config.tie_word_embeddings or model.lm_head.weight is emb.weight:
            model.lm_head.weight = torch.nn.Parameter(emb.weight.detach().clone())
            model.config.tie_word_embeddings = False
        e = emb.weight.double()
        emb.weight.copy_((e - torch.outer(e @ r, r)).float())
        for layer in model.model.layers:
            for proj in (layer.self_attn.o_proj, layer.mlp.down_proj):
                w = proj.weight.double()  # [d_model, in]
                proj.weight.copy_((w - torch.outer(r, r @ w)).float())
                if proj.bias is not None:
                    b = proj.bias.double()
                    proj.bias.copy_((b - (b @ r) * r).float())


def last_logits(model, seqs: list[list[int]]) -> list[list[float]]:
    out = []
    with torch.no_grad():
        for s in seqs:
            out.append(model(torch.tensor([s])).logits[0, -1].tolist())
    return out


def cases() -> list[dict]:
    manifest = json.loads((FAMILIES / "manifest.json").read_text())
    return [c for c in manifest["cases"] if c["model_type"] not in POST_NORM]


def sequences(case: str) -> list[list[int]]:
    ref = json.loads((FAMILIES / case / "reference.json").read_text())
    seqs = []
    for s in ref["sequences"]:
        ids = s["input_ids"]
        seqs += [ids[: len(ids) // 2], ids]
    return seqs


def make() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    for c in cases():
        name = c["name"]
        model = load(FAMILIES / name / "hf")
        d = model.config.hidden_size
        direction = np.random.default_rng(SEED).standard_normal(d).astype(np.float32)
        r = torch.tensor(direction, dtype=torch.float64)
        r = r / r.norm()
        seqs = sequences(name)
        clean = last_logits(model, seqs)
        abliterate(model, r)
        logits = last_logits(model, seqs)
        moved = max(abs(a - b) for x, y in zip(clean, logits) for a, b in zip(x, y))
        (OUT / f"{name}.json").write_text(json.dumps({
            "case": name, "model_type": c["model_type"], "seed": SEED,
            "direction": direction.tolist(), "sequences": seqs, "logits": logits,
            "moved_by_abliteration": moved,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            "regenerate": ".cache/pyref/bin/python tools/reference/make_abliterated.py",
        }) + "\n")
        print(f"{name}: abliteration moves the logits by up to {moved:.3g}")


def check(written: Path) -> None:
    worst, failed = 0.0, []
    for c in cases():
        name = c["name"]
        ref = json.loads((OUT / f"{name}.json").read_text())
        got = last_logits(load(written / name), ref["sequences"])
        diff = max(abs(a - b) for x, y in zip(got, ref["logits"]) for a, b in zip(x, y))
        worst = max(worst, diff)
        print(f"{name}: transformers on refusalkit's folder vs torch's abliteration: max |logit diff| {diff:.3g}")
        if diff > TOLERANCE:
            failed.append(name)
    print(f"worst {worst:.3g} over {len(cases())} families (tolerance {TOLERANCE})")
    if failed:
        sys.exit(f"differ beyond {TOLERANCE}: {', '.join(failed)}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check_written", type=Path, help="folders refusalkit wrote, one per case")
    a = ap.parse_args()
    check(a.check_written) if a.check_written else make()
