#!/usr/bin/env bash
# Runs every notebook under notebooks/ headless through the GoNB kernel and
# fails if any cell fails: an "error" output (a compile error, a panic, a
# non-zero exit), or a stderr stream that mentions "panic" or "error". It
# first fails a notebook with a code cell of more than three lines, a line
# over 100 characters or ';'-joined statements: the library's steps, not glue.
#
#   bash tools/notebook_check.sh [NOTEBOOK.ipynb ...]     (default: notebooks/*.ipynb)
#   make notebook-check                                     (installs first: tools/setup/notebook.sh)
#
# The committed notebooks are never modified: each executed copy is written to a
# temporary folder (printed at the end; kept on failure, or with NOTEBOOK_KEEP=1),
# and the notebooks write their run folders there too (REFUSALKIT_RUNS).
#
# Refreshing the outputs committed with a notebook is a separate, deliberate step:
#
#   NOTEBOOK_SAVE=1 bash tools/notebook_check.sh notebooks/refusal_vectors.ipynb
#
# runs the check and, only if that notebook passed, copies its executed version
# (outputs from this real run included) over the committed file, for review and
# commit like any other change.
#
# Environment: CELL_TIMEOUT (seconds per cell, default 900), NOTEBOOK_KEEP=1.
# Needs tools/setup/notebook.sh (GoNB, goimports, gopls, the Jupyter venv, the
# registered kernel) and the model, tokenizer and backend setup (`make build`).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
# The kernel inherits this environment, and so does every cell's `go build` and
# program: GOTOOLCHAIN, GOEXPERIMENT, CGO_LDFLAGS for libtokenizers, the PJRT plugin path.
# shellcheck source=setup/env.sh
source "${REPO}/tools/setup/env.sh"
export PATH="${REPO}/.cache/bin:${PATH}" # gonb, goimports, gopls
PY="${REPO}/.cache/jupyter/bin/python"
[[ -x "${PY}" && -x "${REPO}/.cache/bin/gonb" ]] || {
	echo "notebook check: run tools/setup/notebook.sh first (or make notebook-check)" >&2
	exit 1
}

if [[ $# -gt 0 ]]; then
	NOTEBOOKS=("$@")
else
	shopt -s nullglob
	NOTEBOOKS=("${REPO}"/notebooks/*.ipynb)
	shopt -u nullglob
fi
[[ ${#NOTEBOOKS[@]} -gt 0 ]] || { echo "notebook check: no notebooks under notebooks/" >&2; exit 1; }

WORK="$(mktemp -d -t refusalkit-notebooks.XXXXXX)"
# Everything Jupyter writes (connection files, config lookups) stays in WORK; the
# gonb kernelspec is found in the venv's own share/jupyter.
export JUPYTER_RUNTIME_DIR="${WORK}/jupyter-runtime" JUPYTER_CONFIG_DIR="${WORK}/jupyter-config"
export JUPYTER_PLATFORM_DIRS=1
# What the notebooks read: which checkout to build against, where to write runs.
export REFUSALKIT_REPO="${REPO}" REFUSALKIT_RUNS="${WORK}/runs"

status=0
"${PY}" - "${WORK}" "${CELL_TIMEOUT:-900}" "${NOTEBOOK_SAVE:-0}" "${NOTEBOOKS[@]}" <<'PY' || status=$?
import os, re, shutil, sys, time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

work, timeout, save, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4:]
bad_stderr = re.compile(r"panic|error", re.IGNORECASE)


def problems(nb):
    """Every failing output: (cell index, first line of source, what)."""
    out = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        head = (cell.source.splitlines() or [""])[0][:60]
        for o in cell.get("outputs", []):
            if o.output_type == "error":
                out.append((i, head, "%s: %s" % (o.get("ename", ""), o.get("evalue", ""))))
            elif o.output_type == "stream" and o.name == "stderr" and bad_stderr.search(o.text):
                out.append((i, head, "stderr: " + o.text.strip()[:2000]))
    return out


def glue(nb):
    """Code cells that are not one to three short lines calling the library:
    more than three non-blank lines (%% and comments count), a line over 100
    characters, or statements joined by ';' (shell lines, starting with '!', aside)."""
    out = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        lines = [l for l in cell.source.splitlines() if l.strip()]
        head = (lines or [""])[0][:60]
        if len(lines) > 3:
            out.append((i, head, "%d lines (at most 3)" % len(lines)))
        for l in lines:
            if len(l) > 100:
                out.append((i, head, "a line of %d characters (at most 100)" % len(l)))
            if ";" in l and not l.lstrip().startswith("!"):
                out.append((i, head, "statements joined by ';'"))
    return out


failed = []
for path in paths:
    path = os.path.abspath(path)
    nb = nbformat.read(path, as_version=4)
    out_path = os.path.join(work, os.path.basename(path))
    long_cells = glue(nb)
    if long_cells:
        failed.append(path)
        print("FAIL %s: cells with glue (the library is missing a function)" % os.path.relpath(path))
        for i, head, what in long_cells:
            print("  cell %d (%s): %s" % (i, head, what))
        continue
    started = {}

    def on_start(cell, cell_index):
        started[cell_index] = time.monotonic()

    def on_executed(cell, cell_index, execute_reply):
        secs = time.monotonic() - started.get(cell_index, time.monotonic())
        head = (cell.source.splitlines() or [""])[0][:70]
        print("  cell %2d  %6.1fs  %s" % (cell_index, secs, head), flush=True)

    client = NotebookClient(
        nb, kernel_name="gonb", timeout=timeout, startup_timeout=120,
        record_timing=False,  # no per-cell timestamps in the saved notebook
        resources={"metadata": {"path": os.path.dirname(path)}},  # cells run in the notebook's folder
        on_cell_start=on_start, on_cell_executed=on_executed)
    print("notebook check: %s" % os.path.relpath(path), flush=True)
    t0 = time.monotonic()
    stopped = None
    # The kernel's own log (GoNB logs to stderr) goes to a file beside the executed copy.
    log_path = out_path[:-len(".ipynb")] + ".kernel.log"
    try:
        with open(log_path, "w") as log:
            client.execute(stderr=log)
    except CellExecutionError as e:
        stopped = str(e).strip().splitlines()[-1] if str(e).strip() else "cell failed"
    except Exception as e:  # kernel died, timeout, ...
        stopped = "%s: %s" % (type(e).__name__, e)
    secs = time.monotonic() - t0
    nbformat.write(nb, out_path)
    found = problems(nb)
    if stopped and not found:
        found = [(-1, "", stopped)]
    if found:
        failed.append(path)
        print("FAIL %s (%.0fs), executed copy: %s, kernel log: %s" % (os.path.relpath(path), secs, out_path, log_path))
        for i, head, what in found:
            print("  cell %d (%s): %s" % (i, head, what))
        continue
    print("ok   %s (%.0fs)" % (os.path.relpath(path), secs))
    if save:
        shutil.copyfile(out_path, path)
        print("     NOTEBOOK_SAVE=1: copied the executed notebook over %s" % os.path.relpath(path))

sys.exit(1 if failed else 0)
PY

if [[ ${status} -eq 0 && "${NOTEBOOK_KEEP:-0}" != "1" ]]; then
	rm -rf "${WORK}"
else
	echo "notebook check: executed notebooks and runs kept in ${WORK}"
fi
exit "${status}"
