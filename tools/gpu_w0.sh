#!/usr/bin/env bash
# W0 on a GPU machine, timed on a random-weight model of Llama-2-7B's shape
# (32 layers, d_model 4096, 6.7B parameters: honest timing without a
# download). Needs an NVIDIA GPU with ~40 GB free and PyPI access for the
# CUDA PJRT plugin (jax-cuda13-pjrt, installed by tools/setup/backend.sh when
# nvidia-smi sees a GPU). Prints bench's table and its JSON line.
#
#   bash tools/gpu_w0.sh            # from the repository root
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi -L
bash tools/setup/tokenizers.sh
bash tools/setup/backend.sh
source tools/setup/env.sh
export GOMLX_BACKEND=xla:cuda
# The naive baseline is skipped: at 7B it would take hours at batch 1.
go run ./cmd/bench --model_path random:llama2-7b --skip_naive
