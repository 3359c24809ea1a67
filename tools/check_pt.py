#!/usr/bin/env python3
"""Check that a run folder's refusal_vector.pt and refusal_vector.safetensors agree.

Both must hold one float32 tensor of shape [n_layers+1, d_model] with identical
values. Prints shape, dtype and max abs diff; exits 1 on any mismatch, 2 on a
missing or unreadable file.

    .cache/pyref/bin/python tools/check_pt.py runs/<run>
"""

import os
import sys

import torch
from safetensors import safe_open


def load_safetensors(path):
    with safe_open(path, framework="pt") as f:
        keys = list(f.keys())
        if len(keys) != 1:
            raise ValueError(f"{path}: expected 1 tensor, found {len(keys)}: {keys}")
        return keys[0], f.get_tensor(keys[0])


def load_pt(path):
    obj = torch.load(path, weights_only=True, map_location="cpu")
    if isinstance(obj, dict):  # tolerate a {name: tensor} state dict with one entry
        if len(obj) != 1:
            raise ValueError(f"{path}: expected 1 tensor, found keys {list(obj)}")
        obj = next(iter(obj.values()))
    if not isinstance(obj, torch.Tensor):
        raise ValueError(f"{path}: expected a tensor, got {type(obj).__name__}")
    return obj


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    run = argv[1]
    pt_path = os.path.join(run, "refusal_vector.pt")
    st_path = os.path.join(run, "refusal_vector.safetensors")
    try:
        pt = load_pt(pt_path)
        st_name, st = load_safetensors(st_path)
    except Exception as e:  # missing file, bad format
        print(f"FAIL: {e}", file=sys.stderr)
        return 2

    print(f"{pt_path}: shape={list(pt.shape)} dtype={pt.dtype}")
    print(f"{st_path}: tensor={st_name!r} shape={list(st.shape)} dtype={st.dtype}")
    errors = []
    for name, t in (("pt", pt), ("safetensors", st)):
        if t.dtype != torch.float32:
            errors.append(f"{name} dtype is {t.dtype}, want torch.float32")
        if t.dim() != 2 or t.shape[0] < 2 or t.shape[1] < 1:
            errors.append(f"{name} shape {list(t.shape)} is not [n_layers+1, d_model]")
    if pt.shape != st.shape:
        errors.append(f"shapes differ: {list(pt.shape)} vs {list(st.shape)}")
    else:
        a, b = pt.to(torch.float64), st.to(torch.float64)
        diff = (a - b).abs().max().item() if a.numel() else 0.0
        print(f"max abs diff: {diff}")
        if not torch.isfinite(pt).all() or not torch.isfinite(st).all():
            errors.append("non-finite values")
        elif not torch.equal(pt, st):
            errors.append(f"values differ (max abs diff {diff})")
    for e in errors:
        print(f"FAIL: {e}", file=sys.stderr)
    if errors:
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
