#!/usr/bin/env bash
# Builds llama.cpp from the source that the llama-cpp-python sdist vendors (the same
# pinned sdist as tools/setup/llamacpp.sh) into .cache/llamacpp-build (git-ignored):
# only the targets refusalkit's interop check (make interop-check) needs:
#
#   bin/llama-cvector-generator   llama.cpp's own control-vector writer (import check)
#   bin/llama-completion          the non-interactive llama-cli, for the README's command
#   bin/refusalkit-cvec-logits    tools/interop/cvec_logits.cpp: first-token logits and a
#                                 greedy completion under a control vector
#
# CPU only, static libraries, Release. On 2 cores this takes several minutes, which is
# why it sits behind make interop-check and not in make setup. Idempotent: does nothing
# when the stamp (sdist version and hash, and the hash of tools/interop) matches.
#
#   bash tools/setup/llamacpp_build.sh
set -euo pipefail

VERSION="0.3.36"
SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
JOBS="${JOBS:-2}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="$ROOT/.cache/llamacpp-build"
STAMP="$DEST/.stamp"
TARGETS=(llama-cvector-generator llama-completion refusalkit-cvec-logits)
IHASH="$(cat "$ROOT/tools/interop/CMakeLists.txt" "$ROOT/tools/interop/cvec_logits.cpp" | sha256sum | cut -d' ' -f1)"
WANT="llama-cpp-python==$VERSION sha256=$SHA256 interop=$IHASH"

have_all() { for t in "${TARGETS[@]}"; do [[ -x "$DEST/bin/$t" ]] || return 1; done; }
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] && have_all; then
  echo "llamacpp_build.sh: $DEST is up to date ($WANT)"
  exit 0
fi

command -v cmake >/dev/null || {
  echo "llamacpp_build.sh: cmake not found; installing it from Debian"
  apt-get install -y cmake >/dev/null || { apt-get update >/dev/null && apt-get install -y cmake >/dev/null; }
}
command -v g++ >/dev/null || { echo "llamacpp_build.sh: g++ not found (apt-get install -y g++)" >&2; exit 1; }

if [[ -x "$ROOT/.cache/pyref/bin/python" ]]; then PY="$ROOT/.cache/pyref/bin/python"; else PY="$(command -v python3)"; fi

SRC="$DEST/src"
SDIST_CACHE="$DEST/llama_cpp_python-$VERSION.tar.gz"
mkdir -p "$DEST"
if [[ ! -f "$SDIST_CACHE" || "$(sha256sum "$SDIST_CACHE" | cut -d' ' -f1)" != "$SHA256" ]]; then
  echo "llamacpp_build.sh: downloading llama-cpp-python $VERSION (sdist)"
  TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
  "$PY" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
    "llama-cpp-python==$VERSION" -d "$TMP"
  GOT="$(sha256sum "$TMP/llama_cpp_python-$VERSION.tar.gz" | cut -d' ' -f1)"
  if [[ "$GOT" != "$SHA256" ]]; then
    echo "llamacpp_build.sh: sha256 mismatch: got $GOT, want $SHA256" >&2; exit 1
  fi
  mv "$TMP/llama_cpp_python-$VERSION.tar.gz" "$SDIST_CACHE"
fi
if [[ ! -f "$SRC/CMakeLists.txt" ]]; then
  rm -rf "$SRC"; mkdir -p "$SRC"
  tar -xzf "$SDIST_CACHE" -C "$SRC" --strip-components=3 "llama_cpp_python-$VERSION/vendor/llama.cpp"
fi

# Configure and build output go to build.log; a failure says so in one line
# (its last lines follow it), so make interop-check's exit names its cause.
LOG="$DEST/build.log"
: >"$LOG"
failed() {
  echo "llamacpp_build.sh: building llama.cpp failed while $1 (full log: $LOG; its last lines follow)" >&2
  tail -n 20 "$LOG" >&2
  exit 1
}
echo "llamacpp_build.sh: configuring (targets: ${TARGETS[*]}; log: $LOG)"
nice -n 19 cmake -S "$ROOT/tools/interop" -B "$DEST/build" -DLLAMA_CPP_DIR="$SRC" \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_OPENSSL=OFF -DGGML_BACKEND_DL=OFF -DGGML_CPU=ON >>"$LOG" 2>&1 || failed "configuring (cmake)"
echo "llamacpp_build.sh: building with -j$JOBS (several minutes on 2 cores)"
nice -n 19 cmake --build "$DEST/build" -j"$JOBS" --target "${TARGETS[@]}" >>"$LOG" 2>&1 || failed "compiling (cmake --build)"

mkdir -p "$DEST/bin"
for t in "${TARGETS[@]}"; do
  f="$(find "$DEST/build" -type f -name "$t" -perm -u+x | head -1)"
  [[ -n "$f" ]] || failed "collecting $t, which the build did not produce"
  cp "$f" "$DEST/bin/$t"
done
echo "$VERSION" > "$DEST/LLAMA_CPP_PYTHON_VERSION"
echo "$WANT" > "$STAMP"
echo "llamacpp_build.sh: built ${TARGETS[*]} into $DEST/bin"
