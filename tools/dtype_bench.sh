#!/usr/bin/env bash
# Generation speed and memory per dtype on this machine's CPU backends, beside
# transformers' generate on the same shape in the same dtypes (`make
# bench-dtype`; docs/precision.md). With tools/setup/env.sh sourced.
#
#   bash tools/dtype_bench.sh      BACKENDS=xla:cpu,go BATCHES=1,8,64 TOKENS=32 to change what is timed
#
# refusalkit: cmd/genbench on the bundled model, one process per backend and
# dtype (a freed model's memory is not always returned before the next one
# loads, and peak RSS is per process). transformers: tools/reference/hf_generate_bench.py
# on a random-weight model of the bundled model's shape (the same work; its
# prompts are 32 tokens, genbench's chat-templated ones 40-41), sampling with
# the same settings, no stop, after a warm-up.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKENDS="${BACKENDS:-xla:cpu,go}"
BATCHES="${BATCHES:-1,8,64}"
TOKENS="${TOKENS:-32}"
echo "dtype_bench: $(date -u +%FT%TZ), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
go build -o bin/genbench ./cmd/genbench
from=3 # genbench's table header, once
for dt in float32 bfloat16 float16; do
	for b in ${BACKENDS//,/ }; do
		bin/genbench --backends "$b" --dtypes "$dt" --batches "$BATCHES" --tokens "$TOKENS" | sed -un "${from}"',$p'
		from=4
	done
done
for dt in float32 bfloat16 float16; do
	.cache/pyref/bin/python tools/reference/hf_generate_bench.py --shape smollm2-135m --device cpu --dtype "$dt" \
		--batches "$BATCHES" --tokens "$TOKENS" | grep -v '^{'
done
