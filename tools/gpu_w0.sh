#!/usr/bin/env bash
# refusalkit against transformers on a GPU machine, side by side, on a
# random-weight model of Llama-2-7B's shape (honest timing without a
# download). The device machine has no internet; its image holds JAX's CUDA
# PJRT plugin (PyPI jax-cuda13-pjrt), PyTorch and transformers, so nothing is
# fetched there: the Go programs are built here and travel with the tree.
#
#   bash tools/gpu_w0.sh build          # here: stripped bin/genbench and bin/bench, packed as bin/gpu-w0.tgz (~30 MB)
#   bash tools/gpu_w0.sh run            # on the device: writes everything under $OUT (default ./gpu-out)
#   bash tools/gpu_w0.sh run --smoke    # here, on CPU, with the tiny models: every step, in seconds
#
# The run, each step under its own time limit so the whole fits one device
# command (10 minutes; the device gives a task 15 in all): (1) refusalkit generation tokens/s at batch 1, 8 and 64 in
# bfloat16 and float32 (cmd/genbench, peak RSS and model memory); (2)
# transformers' generate in bfloat16 on a random model of the same shape, at
# the same batches and token counts (tools/reference/hf_generate_bench.py);
# (3) W0 scaled to GPU_W0_SCALE of the spec's query counts (cmd/bench, bfloat16).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
smoke=false
[[ "${2:-}" == "--smoke" ]] && smoke=true

case "$mode" in
build)
	bash tools/setup/tokenizers.sh
	source tools/setup/env.sh
	mkdir -p bin
	for p in genbench bench; do
		go build -trimpath -ldflags='-s -w' -o "bin/$p" "./cmd/$p"
	done
	# Two 41 MB binaries are over what travels to the device (64 MiB): packed, ~30 MB.
	tar -czf bin/gpu-w0.tgz -C bin genbench bench
	ls -l bin/gpu-w0.tgz
	echo "gpu_w0: carry bin/gpu-w0.tgz to the device, then: bash tools/gpu_w0.sh run"
	exit 0
	;;
run) ;;
*)
	echo "usage: bash tools/gpu_w0.sh build | run [--smoke]" >&2
	exit 2
	;;
esac

OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
if [[ ! -x bin/genbench || ! -x bin/bench ]]; then
	[[ -f bin/gpu-w0.tgz ]] || { echo "gpu_w0: no bin/gpu-w0.tgz: run 'bash tools/gpu_w0.sh build' here first and carry it" >&2; exit 1; }
	tar -xzf bin/gpu-w0.tgz -C bin
fi
export GOMLX_NO_AUTO_INSTALL=1
if $smoke; then
	source tools/setup/env.sh
	backend=xla:cpu model=tiny-random shape=tiny device=cpu batches=1,8 tokens=8 scale=0.05
	py=.cache/pyref/bin/python
	limit() { timeout "$1" "${@:2}"; }
else
	nvidia-smi -L | tee "$OUT/nvidia-smi.txt"
	py=python3
	# go-xla loads pjrt_c_api_cuda_plugin.so from PJRT_PLUGIN_LIBRARY_PATH: link
	# the image's JAX plugin under that name, and put the CUDA libraries its
	# wheels bring (site-packages/nvidia/*/lib) on the loader's path.
	plugins="$($py -c 'import jax_plugins, os; print(os.path.dirname(jax_plugins.__path__[0]))')"
	so="$(find "$plugins" -name 'xla_cuda_plugin.so' | head -1)"
	[[ -n "$so" ]] || { echo "gpu_w0: no xla_cuda_plugin.so under $plugins" >&2; exit 1; }
	pjrt="$(mktemp -d)"
	ln -s "$so" "$pjrt/pjrt_c_api_cuda_plugin.so"
	export PJRT_PLUGIN_LIBRARY_PATH="$pjrt"
	site="$($py -c 'import site; print(site.getsitepackages()[0])')"
	for d in "$site"/nvidia/*/lib; do [[ -d "$d" ]] && LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; done
	export LD_LIBRARY_PATH
	backend=xla:cuda model=random:llama2-7b shape=llama2-7b device=cuda batches=1,8,64 tokens=64 scale="${GPU_W0_SCALE:-0.25}"
	limit() { timeout "$1" "${@:2}"; }
fi
echo "gpu_w0: $(date -u +%FT%TZ) backend $backend, model $model, batches $batches, $tokens tokens" | tee "$OUT/summary.txt"

step() { # step NAME SECONDS CMD...: runs CMD under a time limit, output to $OUT/NAME.txt
	local name="$1" secs="$2"
	shift 2
	echo "== $name (limit ${secs}s): $*" | tee -a "$OUT/summary.txt"
	local start=$SECONDS rc=0
	limit "$secs" "$@" >"$OUT/$name.txt" 2>&1 || rc=$?
	echo "   exit $rc after $((SECONDS - start))s; last line: $(tail -n 1 "$OUT/$name.txt")" | tee -a "$OUT/summary.txt"
}

step refusalkit-bf16 180 bin/genbench --backends "$backend" --model_path "$model" --dtypes bfloat16 --batches "$batches" --tokens "$tokens"
step refusalkit-f32 120 bin/genbench --backends "$backend" --model_path "$model" --dtypes float32 --batches "$batches" --tokens "$tokens"
step transformers-bf16 120 "$py" tools/reference/hf_generate_bench.py --shape "$shape" --device "$device" --dtype bfloat16 --batches "$batches" --tokens "$tokens"
# refusalkit's W0 alone: its transformers half (tools/reference/hf_w0.py) reads the
# bundled model's files, not a random model; the side-by-side figure is step 3's.
step w0-bf16 150 bin/bench --model_path "$model" --backend "$backend" --dtype bfloat16 --skip_naive --scale "$scale" --transformers none
echo "gpu_w0: done; results in $OUT" | tee -a "$OUT/summary.txt"
