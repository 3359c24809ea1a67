#!/usr/bin/env bash
# Screenshots a run's charts with headless Chromium, the network closed, into
# OUT (default docs/screenshots), for the README.
#
#   bash tools/screenshot_charts.sh runs/SmolLM2-135M-Instruct/harmless_refusal_vectors [OUT]
set -euo pipefail
RUN="${1:?usage: tools/screenshot_charts.sh RUN_DIR [OUT]}"
OUT="${2:-docs/screenshots}"
mkdir -p "${OUT}"
profile="$(mktemp -d)"
trap 'rm -rf "${profile}"' EXIT
for page in "${RUN}"/charts/*.html; do
	name="$(basename "${page}" .html)"
	/usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
		--user-data-dir="${profile}" --host-resolver-rules="MAP * ~NOTFOUND" --proxy-server=127.0.0.1:9 \
		--window-size=900,520 --virtual-time-budget=3000 --screenshot="${OUT}/${name}.png" \
		"file://$(realpath "${page}")" >/dev/null 2>&1
	echo "${OUT}/${name}.png"
done
