#!/usr/bin/env bash
# Re-fetches the Apache ECharts bundle that package charts embeds (go:embed) and
# inlines into every chart page, so charts render with no network at all.
#
# Output (committed, so a normal build never needs this script):
#   charts/assets/echarts.min.js      dist/echarts.min.js of the npm package
#   charts/assets/LICENSE-echarts     its LICENSE (Apache-2.0)
#   charts/assets/NOTICE-echarts      its NOTICE (Apache-2.0 §4d asks to pass it on)
#   charts/assets/LICENSE-echarts-d3  licenses/LICENSE-d3 (BSD-3, code embedded in the bundle)
#
# Usage:
#   tools/setup/echarts.sh           fetch with `npm pack` (npm registry only) and install
#   tools/setup/echarts.sh --check   only check the committed bundle's sha256 (offline)
#
# The pin: ECHARTS_VERSION and ECHARTS_SHA256 below must match the constants
# EChartsVersion and echartsSHA256 in charts/assets.go (a test checks the Go side).
# To move to another version: change ECHARTS_VERSION, run with ECHARTS_SHA256=any
# to see the new hash, review it, then update both files.
set -euo pipefail

ECHARTS_VERSION="${ECHARTS_VERSION:-5.6.0}"
ECHARTS_SHA256="${ECHARTS_SHA256:-bf4a223524e40b77c304bec67e1222cf551f14880cf42c69dc046558e11c07b1}"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="$REPO/charts/assets"

check() { # check FILE: fails unless FILE has the pinned sha256
	local got
	got="$(sha256sum "$1" | cut -d' ' -f1)"
	if [ "$got" != "$ECHARTS_SHA256" ]; then
		echo "echarts.sh: $1 has sha256 $got, want $ECHARTS_SHA256 (echarts $ECHARTS_VERSION)" >&2
		return 1
	fi
}

if [ "${1:-}" = "--check" ]; then
	check "$DEST/echarts.min.js"
	echo "echarts.sh: $DEST/echarts.min.js is echarts $ECHARTS_VERSION (sha256 ok)"
	exit 0
fi

command -v npm >/dev/null || { echo "echarts.sh: npm is needed (apt-get install -y npm)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# npm pack checks the tarball against the registry's integrity hash; the sha256
# below then pins the exact bytes we ship, whatever the registry says later.
(cd "$tmp" && npm pack --silent "echarts@$ECHARTS_VERSION" >/dev/null)
tar -xzf "$tmp/echarts-$ECHARTS_VERSION.tgz" -C "$tmp" \
	package/dist/echarts.min.js package/LICENSE package/NOTICE package/licenses/LICENSE-d3
check "$tmp/package/dist/echarts.min.js"
mkdir -p "$DEST"
install -m 0644 "$tmp/package/dist/echarts.min.js" "$DEST/echarts.min.js"
install -m 0644 "$tmp/package/LICENSE" "$DEST/LICENSE-echarts"
install -m 0644 "$tmp/package/NOTICE" "$DEST/NOTICE-echarts"
install -m 0644 "$tmp/package/licenses/LICENSE-d3" "$DEST/LICENSE-echarts-d3"
echo "echarts.sh: installed echarts $ECHARTS_VERSION into $DEST"
