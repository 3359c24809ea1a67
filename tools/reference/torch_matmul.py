"""float32 matrix-product throughput of torch, for the shapes of cmd/matmulbench.

The side of `go run ./cmd/matmulbench --shapes S` that transformers runs on:
each shape MxKxN ([M,K] times [K,N]; a trailing "t" stores the right side
[N,K] and multiplies by its transpose, as nn.Linear does), the median of 27
timed products after 3 warm-ups, in GFLOP/s, as a markdown row.

    .cache/pyref/bin/python tools/reference/torch_matmul.py --shapes 8x576x1536t,512x576x1536t --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", required=True, help='comma-separated MxKxN[t], as cmd/matmulbench takes them')
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads (default: the cores)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(42)
    row = []
    for spec in args.shapes.split(","):
        transposed = spec.endswith("t")
        m, k, n = (int(x) for x in spec.rstrip("t").split("x"))
        x = torch.rand(m, k, generator=g) - 0.5
        w = torch.rand(n, k, generator=g) - 0.5 if transposed else torch.rand(k, n, generator=g) - 0.5
        times = []
        with torch.inference_mode():
            for i in range(30):
                start = time.perf_counter()
                _ = x @ w.T if transposed else x @ w
                if i >= 3:
                    times.append(time.perf_counter() - start)
        row.append(2 * m * k * n / statistics.median(times) / 1e9)
    print("| shape | " + " | ".join(args.shapes.split(",")) + " |")
    print("|---|" + "---:|" * len(row))
    print(f"| torch {torch.__version__} ({args.threads} threads) | " + " | ".join(f"{r:.1f}" for r in row) + " |")


if __name__ == "__main__":
    main()
