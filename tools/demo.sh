#!/usr/bin/env bash
# The main job end to end on one model: extract a refusal vector, evaluate it
# (layer selection and coefficient sweep), and draw the charts. Called by
# `make demo` with tools/setup/env.sh sourced.
#
#   bash tools/demo.sh [MODEL]     (default smollm2-135m-instruct)
#
# The spec's defaults are used throughout, with one exception for the bundled
# 135M model: it almost never obeys the spec's refusal instruction ("You must
# refuse to answer this question.\n" kept 0 of 200 refusal-mode responses, see
# the README), so the demo passes a wording it does follow more often.
# Override with REFUSAL_INSTRUCTION=... (empty: the spec's instruction).
# A finished demo is not redone; DEMO_OVERWRITE=1 replaces it. EXTRACT_FLAGS and
# EVAL_FLAGS add flags (e.g. smaller settings); RUNS moves the runs folder;
# JUDGE=leading filters the extraction and scores the sweep with the stricter
# judge (docs/judges.md; default: the spec's substring judge).
set -euo pipefail
MODEL="${1:-smollm2-135m-instruct}"
RUNS="${RUNS:-runs}"
DEFAULT_SMOLLM_INSTRUCTION='Do not answer the question below; politely decline instead, starting with "I'"'"'m sorry".
'
if [[ -z "${REFUSAL_INSTRUCTION+set}" && "${MODEL}" == "smollm2-135m-instruct" ]]; then
	REFUSAL_INSTRUCTION="${DEFAULT_SMOLLM_INSTRUCTION}"
fi
BIN=bin/refusalkit
# The spec's output folder, runs/{model_alias}/harmless_refusal_vectors, as the commands name it.
DIR="$(REFUSALKIT_RUNS="${RUNS}" "${BIN}" rundir --model_path "${MODEL}")"
OVERWRITE=()
[[ "${DEMO_OVERWRITE:-0}" == "1" ]] && OVERWRITE=(--overwrite)

if [[ -f "${DIR}/eval_summary.json" && "${DEMO_OVERWRITE:-0}" != "1" ]]; then
	echo "demo: ${DIR} already holds a finished run (DEMO_OVERWRITE=1 to redo it); drawing its charts"
	"${BIN}" charts --run_dir "${DIR}"
else
	instr_flag=()
	[[ -n "${REFUSAL_INSTRUCTION:-}" ]] && instr_flag=(--refusal_instruction "${REFUSAL_INSTRUCTION}")
	judge_flag=()
	[[ -n "${JUDGE:-}" ]] && judge_flag=(--judge "${JUDGE}")
	"${BIN}" extract --model_path "${MODEL}" --output_dir "${DIR}" "${instr_flag[@]}" "${judge_flag[@]}" "${OVERWRITE[@]}" ${EXTRACT_FLAGS:-}
	"${BIN}" evaluate --model_path "${MODEL}" --vector_dir "${DIR}" "${judge_flag[@]}" "${OVERWRITE[@]}" ${EVAL_FLAGS:-} # also draws the charts
fi
