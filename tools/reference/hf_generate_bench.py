#!/usr/bin/env python3
"""Generation speed of Hugging Face transformers on a random-weight Llama of a
given shape: what a researcher would run instead of refusalkit.

`model.generate` with sampling (temperature 1, top-p 0.95, top-k 64, no stop),
at each batch size, for --tokens new tokens, after one warm-up call; prints a
table and a last JSON line. The shapes match refusalkit's `random:<shape>`
models (models/load.go RandomShapes), so the two are timed on the same work.

    .cache/pyref/bin/python tools/reference/hf_generate_bench.py --shape tiny --device cpu   # smoke test
    python3 tools/reference/hf_generate_bench.py --shape llama2-7b --device cuda --dtype bfloat16 --batches 1,8,64
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

# The shapes of refusalkit's random models (RandomShapes, TinyConfig), and the bundled model's.
SHAPES = {
    "llama2-7b": dict(num_hidden_layers=32, hidden_size=4096, num_attention_heads=32, num_key_value_heads=32,
                      head_dim=128, intermediate_size=11008, vocab_size=32000, max_position_embeddings=4096,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False),
    # SmolLM2-135M-Instruct's shape (the bundled model), for the CPU dtype comparison beside genbench.
    "smollm2-135m": dict(num_hidden_layers=30, hidden_size=576, num_attention_heads=9, num_key_value_heads=3,
                         head_dim=64, intermediate_size=1536, vocab_size=49152, max_position_embeddings=8192,
                         rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True),
    "tiny": dict(num_hidden_layers=3, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                 intermediate_size=64, vocab_size=259, max_position_embeddings=512, rms_norm_eps=1e-5,
                 rope_theta=10000.0, tie_word_embeddings=True),
}
PROMPT_TOKENS = 32  # one prompt bucket of refusalkit's generation


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="tiny", choices=sorted(SHAPES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args()
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    t0 = time.time()
    with torch.device(args.device):
        model = LlamaForCausalLM(LlamaConfig(**SHAPES[args.shape])).to(dtype)
    model.eval()
    load_s = time.time() - t0
    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        ids = torch.randint(3, SHAPES[args.shape]["vocab_size"], (batch, PROMPT_TOKENS), device=args.device)
        kw = dict(max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=True, temperature=1.0,
                  top_p=0.95, top_k=64, pad_token_id=0, attention_mask=torch.ones_like(ids))
        with torch.no_grad():
            model.generate(ids, **{**kw, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.time()
            out = model.generate(ids, **kw)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            secs = time.time() - start
        new = out.shape[1] - PROMPT_TOKENS
        row = {"batch": batch, "new_tokens": new, "seconds": secs, "tokens_per_s": batch * new / secs}
        if args.device.startswith("cuda"):
            row["device_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        rows.append(row)
        print(f"transformers {args.shape} {args.dtype} {args.device} batch {batch}: {row['tokens_per_s']:.1f} tokens/s")
    print(json.dumps({"framework": "transformers " + transformers.__version__, "torch": torch.__version__,
                      "shape": args.shape, "dtype": args.dtype, "device": args.device, "load_s": load_s, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
