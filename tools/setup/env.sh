# shellcheck shell=bash
# Source this file (do not execute it):   source tools/setup/env.sh
#
# Sets the environment for building and running this repo: the Go toolchain,
# and the native GoMLX backends installed by tools/setup/backend.sh into
# <repo>/.cache/. Only paths that exist are exported, so it is safe to source
# before (or without) running the setup scripts; re-sourcing does not grow
# the path variables.

if [ -n "${BASH_SOURCE[0]:-}" ]; then
	_rk_env_file="${BASH_SOURCE[0]}"
elif [ -n "${ZSH_VERSION:-}" ]; then
	# shellcheck disable=SC2296
	_rk_env_file="${(%):-%x}"
else
	_rk_env_file="$0"
fi
REPO="$(cd "$(dirname "$_rk_env_file")/../.." && pwd)"
export REPO
unset _rk_env_file

# _rk_prepend VAR DIR: prepends DIR to the ':'-separated VAR, unless already there.
_rk_prepend() {
	eval "_rk_cur=\"\${$1:-}\""
	case ":${_rk_cur}:" in
	*":$2:"*) ;;
	*) eval "export $1=\"$2\${_rk_cur:+:\$_rk_cur}\"" ;;
	esac
	unset _rk_cur
}

# --- Go ---------------------------------------------------------------------------
export GOTOOLCHAIN=go1.27.3
# The pure-Go backend ("go") only compiles its AVX2/AVX-512 matmul kernels with the
# simd experiment (~30x faster matmul on this CPU). Override with GOEXPERIMENT=... (or
# GOEXPERIMENT=none) before sourcing if it gets in the way.
export GOEXPERIMENT="${GOEXPERIMENT:-simd}"

# --- GoMLX backends ---------------------------------------------------------------------
# Never let go-xla / compute-onnx try to download plugins (GitHub is unreachable);
# missing plugins then fail fast with an error instead.
export GOMLX_NO_AUTO_INSTALL=1

# XLA PJRT plugins: go-xla searches these dirs for pjrt_c_api_<name>_plugin.so
# ("xla:cpu", and "xla:cuda" on GPU machines). Setting the variable replaces go-xla's
# default search path (~/.local/lib/go-xla, /usr/local/lib/go-xla, ld.so paths).
if [ -f "$REPO/.cache/pjrt-cuda/nvidia/pjrt_c_api_cuda_plugin.so" ]; then
	_rk_prepend PJRT_PLUGIN_LIBRARY_PATH "$REPO/.cache/pjrt-cuda/nvidia"
	for _rk_d in "$REPO"/.cache/pjrt-cuda/nvidia/*/lib; do
		[ -d "$_rk_d" ] && _rk_prepend LD_LIBRARY_PATH "$_rk_d"
	done
	unset _rk_d
fi
if [ -f "$REPO/.cache/pjrt/pjrt_c_api_cpu_plugin.so" ]; then
	_rk_prepend PJRT_PLUGIN_LIBRARY_PATH "$REPO/.cache/pjrt"
fi

# ONNX Runtime for "onnx:cpu" (only if installed with tools/setup/backend.sh --with-onnx).
if [ -f "$REPO/.cache/onnxruntime/libonnxruntime.so" ]; then
	export ONNXRUNTIME_SHARED_LIBRARY_PATH="$REPO/.cache/onnxruntime/libonnxruntime.so"
fi

# Default backend: leave GOMLX_BACKEND unset so the code picks the fastest that loads
# (xla:cuda > xla:cpu > go). To force one:  export GOMLX_BACKEND=xla:cpu   (or go, onnx:cpu)

# --- Tokenizers (cgo) -------------------------------------------------------------------
# libtokenizers.a is built into .cache/lib by tools/setup/tokenizers.sh; the Go bindings
# only need the linker search path. Added once, and only when the library is there.
if [ -f "$REPO/.cache/lib/libtokenizers.a" ]; then
	case " ${CGO_LDFLAGS:-} " in
	*" -L$REPO/.cache/lib "*) ;;
	*) export CGO_LDFLAGS="-L$REPO/.cache/lib${CGO_LDFLAGS:+ $CGO_LDFLAGS}" ;;
	esac
fi

unset -f _rk_prepend
