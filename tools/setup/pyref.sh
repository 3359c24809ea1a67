#!/usr/bin/env bash
# Creates the Python reference venv at .cache/pyref (git-ignored) with the pinned
# packages of tools/reference/requirements.txt. Idempotent: creates the venv only
# if it is missing, and runs pip only when requirements.txt changed since the last
# successful install (a hash stamp inside the venv). Needs PyPI; large (torch with
# its CUDA libraries, ~5.6 GiB), a few minutes on first run.
#
#   bash tools/setup/pyref.sh            # then: .cache/pyref/bin/python ...
#   PYREF_PYTHON=python3.12 bash tools/setup/pyref.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.cache/pyref"
REQ="$ROOT/tools/reference/requirements.txt"
STAMP="$VENV/.requirements.sha256"

pick_python() {
  if [[ -n "${PYREF_PYTHON:-}" ]]; then echo "$PYREF_PYTHON"; return; fi
  for p in python3.11 python3.12 python3.13 python3.10 python3; do
    if command -v "$p" >/dev/null 2>&1; then echo "$p"; return; fi
  done
  echo "pyref.sh: no python3 found" >&2
  exit 1
}

if [[ ! -x "$VENV/bin/python" ]]; then
  PY="$(pick_python)"
  "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
    || { echo "pyref.sh: $PY is older than 3.10" >&2; exit 1; }
  echo "pyref.sh: creating venv $VENV with $("$PY" --version)"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
fi

WANT="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  echo "pyref.sh: $VENV is up to date"
  exit 0
fi

echo "pyref.sh: installing $REQ"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQ"
"$VENV/bin/python" -c 'import torch, transformers, gguf, numpy, safetensors, accelerate; print("pyref.sh: torch", torch.__version__, "transformers", transformers.__version__)'
echo "$WANT" > "$STAMP"
