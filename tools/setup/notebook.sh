#!/usr/bin/env bash
# Installs what the GoNB notebooks under notebooks/ need, all inside the
# repository (nothing global is touched):
#
#   .cache/bin/gonb        GoNB v0.11.5, the Go Jupyter kernel (the version go.mod
#                          pins: charts displays through its gonbui package)
#   .cache/bin/goimports   golang.org/x/tools v0.50.0  (GoNB runs it on every cell)
#   .cache/bin/gopls       golang.org/x/tools/gopls v0.24.0 (GoNB's completion;
#                          `gonb --install` refuses to register without it)
#   .cache/jupyter/        a Python venv with nbclient and jupyter_client
#                          (tools/setup/requirements-notebook.txt, all pinned)
#   .cache/jupyter/share/jupyter/kernels/gonb/kernel.json
#                          the GoNB kernel, registered in the venv's own data
#                          dir (found by the venv's Jupyter, not by ~/.local)
#
# Run with tools/setup/env.sh sourced (GOTOOLCHAIN=go1.27.3); `make
# notebook-check` does. Idempotent: each part is skipped when the installed
# version already matches. Needs the Go module proxy and PyPI only.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
GONB_VERSION=v0.11.5
TOOLS_VERSION=v0.50.0 # goimports
GOPLS_VERSION=v0.24.0
BIN="${REPO}/.cache/bin"
VENV="${REPO}/.cache/jupyter"
REQS="${REPO}/tools/setup/requirements-notebook.txt"
KERNEL_DIR="${VENV}/share/jupyter/kernels/gonb"

export GOBIN="${BIN}"
export PATH="${BIN}:${PATH}"
mkdir -p "${BIN}"

die() { echo "notebook setup: $*" >&2; exit 1; }

# installed_version BINARY MODULE: the version of MODULE that BINARY was built from ("" if none).
installed_version() {
	[[ -x "$1" ]] || return 0
	go version -m "$1" 2>/dev/null | awk -v mod="$2" '($1 == "mod" || $1 == "dep") && $2 == mod { print $3; exit }'
}

# --- GoNB ------------------------------------------------------------------------
# The kernel must speak the same protocol as the gonbui package that charts imports,
# so its version is the one go.mod pins. It is built in a scratch module: the repo's
# go.sum only holds what gonbui needs, not the kernel's own dependencies, and
# installing must not touch go.mod or go.sum. (`go install
# github.com/janpfeifer/gonb@v0.11.5` would be the one-liner, but it first asks the
# proxy for the module's version list, which this proxy refuses with 403.)
pinned="$(cd "${REPO}" && go list -m -f '{{.Version}}' github.com/janpfeifer/gonb 2>/dev/null || true)"
if [[ -n "${pinned}" && "${pinned}" != "${GONB_VERSION}" ]]; then
	die "go.mod pins github.com/janpfeifer/gonb ${pinned}, this script installs ${GONB_VERSION}: update GONB_VERSION"
fi
if [[ "$(installed_version "${BIN}/gonb" github.com/janpfeifer/gonb)" == "${GONB_VERSION}" ]]; then
	echo "notebook: gonb ${GONB_VERSION} present"
else
	echo "notebook: go install github.com/janpfeifer/gonb ${GONB_VERSION}"
	scratch="$(mktemp -d)"
	trap 'rm -rf "${scratch}"' EXIT
	if ! (cd "${scratch}" && go mod init gonb-install &&
		go get "github.com/janpfeifer/gonb@${GONB_VERSION}" &&
		go install github.com/janpfeifer/gonb) >"${scratch}/log" 2>&1; then
		cat "${scratch}/log" >&2
		die "go install github.com/janpfeifer/gonb ${GONB_VERSION} failed"
	fi
fi

# --- goimports and gopls ------------------------------------------------------------
if [[ "$(installed_version "${BIN}/goimports" golang.org/x/tools)" == "${TOOLS_VERSION}" ]]; then
	echo "notebook: goimports ${TOOLS_VERSION} present"
else
	echo "notebook: go install golang.org/x/tools/cmd/goimports@${TOOLS_VERSION}"
	go install "golang.org/x/tools/cmd/goimports@${TOOLS_VERSION}"
fi
if [[ "$(installed_version "${BIN}/gopls" golang.org/x/tools/gopls)" == "${GOPLS_VERSION}" ]]; then
	echo "notebook: gopls ${GOPLS_VERSION} present"
else
	echo "notebook: go install golang.org/x/tools/gopls@${GOPLS_VERSION} (a few minutes on 2 cores)"
	go install "golang.org/x/tools/gopls@${GOPLS_VERSION}"
fi

# --- Jupyter (client side only) ------------------------------------------------------
stamp="${VENV}/.requirements.sha256"
want="$(sha256sum "${REQS}" | cut -d' ' -f1)"
if [[ -x "${VENV}/bin/python" && -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
	echo "notebook: Jupyter venv ${VENV} present"
else
	echo "notebook: Jupyter venv ${VENV} (pip install -r ${REQS#"${REPO}/"})"
	python3 -m venv "${VENV}"
	"${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check -r "${REQS}"
	echo "${want}" >"${stamp}"
fi

# --- Register the kernel in the venv's data dir ----------------------------------------
# gonb --install writes $JUPYTER_DATA_DIR/kernels/gonb/kernel.json pointing at this
# binary; the venv's Jupyter searches <venv>/share/jupyter, so nothing under ~ changes.
# The kernel inherits the environment of whoever starts Jupyter (the check sources
# tools/setup/env.sh first: Go toolchain, CGO_LDFLAGS, PJRT plugin path).
if [[ -f "${KERNEL_DIR}/kernel.json" ]] && grep -qF "\"${BIN}/gonb\"" "${KERNEL_DIR}/kernel.json"; then
	echo "notebook: GoNB kernel registered in ${KERNEL_DIR}"
else
	echo "notebook: registering the GoNB kernel in ${KERNEL_DIR}"
	JUPYTER_DATA_DIR="${VENV}/share/jupyter" "${BIN}/gonb" --install --logtostderr >/dev/null 2>&1 ||
		JUPYTER_DATA_DIR="${VENV}/share/jupyter" "${BIN}/gonb" --install --logtostderr
fi
"${VENV}/bin/jupyter" kernelspec list 2>/dev/null | grep -q '^ *gonb ' || die "the venv's Jupyter does not list the gonb kernel"
echo "notebook: ready ($("${BIN}/gonb" -V 2>/dev/null), $("${VENV}/bin/python" -c 'import nbclient; print("nbclient", nbclient.__version__)'))"
