#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium, used only by the browser test of
# package charts (charts/browser_test.go), which is skipped when
# /usr/bin/chromium is absent. Idempotent: does nothing when it is installed.
# Needs root (or sudo) and the Debian package mirrors.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
	echo "chromium.sh: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) already installed"
	exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "chromium.sh: installed $(/usr/bin/chromium --version 2>/dev/null)"
