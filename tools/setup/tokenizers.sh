#!/usr/bin/env bash
# Builds the native static library libtokenizers.a needed by the Go bindings
# github.com/daulet/tokenizers (used only by package models/tokenizer, the one
# cgo package of this project).
#
# Output: <repo>/.cache/lib/libtokenizers.a   (.cache/ is git-ignored)
#
# The Go bindings declare `#cgo LDFLAGS: -ltokenizers -ldl -lm -lstdc++`, so the
# linker only has to be told the directory holding libtokenizers.a:
#     export CGO_LDFLAGS="-L<repo>/.cache/lib"
# (equivalently: go build -ldflags="-extldflags '-L<repo>/.cache/lib'").
#
# With internet access, the simplest first choice is the prebuilt library from
# the project's GitHub releases, e.g.
#   https://github.com/daulet/tokenizers/releases/download/v1.25.0/libtokenizers.linux-amd64.tar.gz
# (unpack libtokenizers.a into .cache/lib). This script instead builds it from
# the Rust sources shipped inside the Go module, which only needs crates.io.
#
# Idempotent: skips the build when the library exists and the stamp file
# records the same version. Environment knobs:
#   TOKENIZERS_VERSION  (default v1.25.0, must match go.mod)
#   CARGO_BUILD_JOBS    (default 2)
#   FORCE=1             rebuild even if the stamp matches
set -euo pipefail

export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
VERSION="${TOKENIZERS_VERSION:-v1.25.0}"
LIB_DIR="${REPO}/.cache/lib"
LIB="${LIB_DIR}/libtokenizers.a"
STAMP="${LIB_DIR}/libtokenizers.stamp"
BUILD_DIR="${REPO}/.cache/build/tokenizers-${VERSION}"
JOBS="${CARGO_BUILD_JOBS:-2}"

# Stamp content: the bindings version plus the tiktoken-rs replacement used.
TIKTOKEN_RS_VERSION="0.9.1"
STAMP_CONTENT="github.com/daulet/tokenizers@${VERSION} tiktoken-rs=${TIKTOKEN_RS_VERSION}"

if [[ -f "${LIB}" && -f "${STAMP}" && "$(cat "${STAMP}")" == "${STAMP_CONTENT}" && "${FORCE:-0}" != "1" ]]; then
  echo "libtokenizers.a already built for ${VERSION}: ${LIB}"
  echo "Link with: export CGO_LDFLAGS=\"-L${LIB_DIR}\""
  exit 0
fi

command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }
command -v go >/dev/null || { echo "go not found" >&2; exit 1; }

MODCACHE="$(go env GOMODCACHE)"
SRC="${MODCACHE}/github.com/daulet/tokenizers@${VERSION}"
if [[ ! -d "${SRC}" ]]; then
  echo "Downloading Go module github.com/daulet/tokenizers@${VERSION} ..."
  (cd "${REPO}" && go mod download "github.com/daulet/tokenizers@${VERSION}")
fi
[[ -f "${SRC}/crates/tokenizers/Cargo.toml" ]] || { echo "Rust sources not found in ${SRC}" >&2; exit 1; }

# The module cache is read-only: copy the sources (not the old target dir) to a
# writable build directory. Keep ${BUILD_DIR}/target between runs for
# incremental rebuilds.
echo "Copying sources from ${SRC} to ${BUILD_DIR} ..."
mkdir -p "${BUILD_DIR}"
for f in Cargo.toml Cargo.lock LICENSE crates; do
  rm -rf "${BUILD_DIR:?}/${f}"
  cp -r "${SRC}/${f}" "${BUILD_DIR}/${f}"
done
chmod -R u+w "${BUILD_DIR}"

# Patch: crates/tokenizers/Cargo.toml depends on
#     tiktoken-rs = { git = "https://github.com/zurawiki/tiktoken-rs" }
# (Cargo.lock pins rev 572bd9e, which calls itself 0.8.0). GitHub is not
# reachable from our build machines, so we use the crates.io release 0.9.1
# instead: it exposes the same API the FFI uses (CoreBPE::new taking
# rustc-hash 1.1 FxHashMaps, encode(&str, &HashSet<&str>), decode(Vec<Rank>)),
# and it is only used by the tiktoken code path, which this project never
# calls. Later releases (0.10+) moved to rustc-hash 2 and changed decode().
FFI_TOML="${BUILD_DIR}/crates/tokenizers/Cargo.toml"
sed -i -E "s|^tiktoken-rs *= *\{ *git *= *\"https://github.com/zurawiki/tiktoken-rs\" *\}|tiktoken-rs = \"=${TIKTOKEN_RS_VERSION}\"|" "${FFI_TOML}"
if ! grep -q "^tiktoken-rs = \"=${TIKTOKEN_RS_VERSION}\"" "${FFI_TOML}"; then
  echo "Failed to patch tiktoken-rs dependency in ${FFI_TOML}:" >&2
  grep -n tiktoken "${FFI_TOML}" >&2 || true
  exit 1
fi
# Cargo.lock still names the git source: cargo (run without --locked) drops it
# and resolves only tiktoken-rs and its new dependencies; the rest stays locked.

echo "Building tokenizers-ffi (cargo build --release -j ${JOBS}) ..."
(cd "${BUILD_DIR}" && cargo build --release -p tokenizers-ffi -j "${JOBS}")

mkdir -p "${LIB_DIR}"
cp "${BUILD_DIR}/target/release/libtokenizers_ffi.a" "${LIB}.tmp"
mv "${LIB}.tmp" "${LIB}"
echo "${STAMP_CONTENT}" > "${STAMP}"

echo "Built ${LIB}"
echo "Link with: export CGO_LDFLAGS=\"-L${LIB_DIR}\""
