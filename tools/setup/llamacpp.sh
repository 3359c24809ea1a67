#!/usr/bin/env bash
# Installs llama.cpp's Hugging Face -> GGUF converter (convert_hf_to_gguf.py, its
# conversion/ package and its own matching gguf-py) into .cache/llamacpp (git-ignored).
#
# llama.cpp itself is not on PyPI, but the llama-cpp-python source distribution
# vendors a full llama.cpp checkout under vendor/llama.cpp/. We download that sdist
# (pinned version and sha256), unpack only the Python converter files, and throw the
# rest away. Nothing is built. Idempotent: does nothing when the stamp file matches.
#
#   bash tools/setup/llamacpp.sh
#   PYTHONPATH=.cache/llamacpp/gguf-py .cache/pyref/bin/python \
#       .cache/llamacpp/convert_hf_to_gguf.py HF_DIR --outtype f32 --outfile model.gguf
#
# The converter's Python dependencies (torch, transformers, numpy, sentencepiece,
# protobuf, safetensors) come from the pyref venv: tools/setup/pyref.sh.
set -euo pipefail

VERSION="0.3.36"
SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="$ROOT/.cache/llamacpp"
STAMP="$DEST/.stamp"
WANT="llama-cpp-python==$VERSION sha256=$SHA256"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -f "$DEST/convert_hf_to_gguf.py" ]]; then
  echo "llamacpp.sh: $DEST is up to date ($WANT)"
  exit 0
fi

if [[ -x "$ROOT/.cache/pyref/bin/python" ]]; then
  PY="$ROOT/.cache/pyref/bin/python"
else
  PY="$(command -v python3)"
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "llamacpp.sh: downloading llama-cpp-python $VERSION (sdist)"
"$PY" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
  "llama-cpp-python==$VERSION" -d "$TMP"
SDIST="$TMP/llama_cpp_python-$VERSION.tar.gz"
GOT="$(sha256sum "$SDIST" | cut -d' ' -f1)"
if [[ "$GOT" != "$SHA256" ]]; then
  echo "llamacpp.sh: sha256 mismatch for $SDIST: got $GOT, want $SHA256" >&2
  exit 1
fi

P="llama_cpp_python-$VERSION"
V="$P/vendor/llama.cpp"
tar -xzf "$SDIST" -C "$TMP" \
  "$V/convert_hf_to_gguf.py" \
  "$V/conversion" \
  "$V/gguf-py/gguf" \
  "$V/gguf-py/pyproject.toml" \
  "$V/gguf-py/LICENSE" \
  "$V/LICENSE" \
  "$V/requirements/requirements-convert_hf_to_gguf.txt" \
  "$V/requirements/requirements-convert_legacy_llama.txt" \
  "$P/.git/modules/vendor/llama.cpp/HEAD"

rm -rf "$DEST"
mkdir -p "$DEST"
cp -r "$TMP/$V/convert_hf_to_gguf.py" "$TMP/$V/conversion" "$TMP/$V/gguf-py" \
  "$TMP/$V/LICENSE" "$TMP/$V/requirements" "$DEST/"
tr -d '\n' < "$TMP/$P/.git/modules/vendor/llama.cpp/HEAD" > "$DEST/LLAMA_CPP_COMMIT"
echo "$VERSION" > "$DEST/LLAMA_CPP_PYTHON_VERSION"

# Check that the converter imports with its own gguf-py.
PYTHONPATH="$DEST/gguf-py" "$PY" -c "
import sys; sys.path.insert(0, '$DEST')
import gguf, conversion
print('llamacpp.sh: converter imports; gguf-py from', gguf.__file__)
" || echo "llamacpp.sh: warning: the converter does not import with $PY (run tools/setup/pyref.sh)" >&2

echo "$WANT" > "$STAMP"
echo "llamacpp.sh: installed llama.cpp $(cat "$DEST/LLAMA_CPP_COMMIT") converter into $DEST"
