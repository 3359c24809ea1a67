#!/usr/bin/env bash
# Workload W1: the method at the spec's defaults on a model that refuses,
# Qwen2.5-Coder-1.5B-Instruct (installed on first use), then what a
# researcher asks next, and the report docs/w1.md. Called by `make w1`.
#
#   1. extract   the spec's defaults: 20 queries x 10 completions x 2 modes,
#                64 new tokens, the spec's refusal instruction, seed 42
#   2. evaluate  32 validation and 20 test instructions, coefficients
#                0 0.5 1 2 5 with side effects, and a coefficient calibrated
#                for refusal >= 0.9 under KL <= 0.1
#   3. ablate    the refusal vector's row at the selected layer: JailbreakBench
#                refusal without and with ablation, induced refusal, harmless KL,
#                and the harmful-harmless direction's cosine at every layer
#   4. ablate --direction harmful_harmless: the same for the reference
#                method's own direction at its own layer
#   5. abliterate each direction (--check 100 against runtime ablation), then
#                the abliterated model's own JailbreakBench refusals (ablate on it)
#   6. charts as pictures (docs/w1/), and docs/w1.md: the headline table
#                (tools/w1_headline.py), the abliterated models
#                (tools/w1_abliteration.py) and `refusalkit report`
#
# Each step that has finished is not redone (W1_OVERWRITE=1 redoes them all);
# an interrupted extraction is resumed. MODEL= runs it on another model, and
# EXTRACT_FLAGS / EVAL_FLAGS / ABLATE_FLAGS add flags (reduced settings for
# a smoke run; the report then says which); BIN= runs another build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="${PWD}"
MODEL="${MODEL:-qwen2.5-coder-1.5b-instruct}"
BIN="$(realpath "${BIN:-bin/refusalkit}")"
OUT="${W1_DOCS:-docs}"
DIR="$("${BIN}" rundir --model_path "${MODEL}")"
OVERWRITE=()
[[ "${W1_OVERWRITE:-0}" == "1" ]] && OVERWRITE=(--overwrite)
say() { echo "w1: $*" >&2; }

if [[ "${W1_OVERWRITE:-0}" != "1" ]] && grep -q '"complete": true' "${DIR}/metadata.json" 2>/dev/null; then
	say "extraction in ${DIR} is finished"
elif [[ "${W1_OVERWRITE:-0}" != "1" && -d "${DIR}" ]]; then
	say "resuming the extraction in ${DIR}"
	"${BIN}" extract --model_path "${MODEL}" --output_dir "${DIR}" --resume ${EXTRACT_FLAGS:-}
else
	"${BIN}" extract --model_path "${MODEL}" --output_dir "${DIR}" "${OVERWRITE[@]}" ${EXTRACT_FLAGS:-}
fi
if [[ "${W1_OVERWRITE:-0}" != "1" && -f "${DIR}/eval_summary.json" ]]; then
	say "evaluation in ${DIR} is finished"
else
	"${BIN}" evaluate --model_path "${MODEL}" --vector_dir "${DIR}" --target_refusal_rate 0.9 --max_kl 0.1 "${OVERWRITE[@]}" ${EVAL_FLAGS:-}
fi
for direction in vector harmful_harmless; do
	sub="${DIR}"
	[[ "${direction}" == harmful_harmless ]] && sub="${DIR}/harmful_harmless"
	if [[ "${W1_OVERWRITE:-0}" != "1" && -f "${sub}/ablation_summary.json" ]]; then
		say "ablation of the ${direction} direction in ${sub} is finished"
	else
		"${BIN}" ablate --model_path "${MODEL}" --vector_dir "${DIR}" --direction "${direction}" "${OVERWRITE[@]}" ${ABLATE_FLAGS:-}
	fi
done

# Each direction projected out of the weights (abliterate, checked against
# runtime ablation on 100 harmless prompts), and the abliterated model's own
# JailbreakBench refusals (the baseline of an ablate run on it).
for direction in vector harmful_harmless; do
	abl="$(dirname "${DIR}")/abliterated_${direction}"
	if [[ "${W1_OVERWRITE:-0}" != "1" && -f "${abl}/abliteration.json" ]]; then
		say "abliteration of the ${direction} direction in ${abl} is finished"
	else
		"${BIN}" abliterate --model_path "${MODEL}" --vector_dir "${DIR}" --direction "${direction}" --out "${abl}" --check 100 "${OVERWRITE[@]}" >/dev/null
	fi
	layer="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["provenance"]["layer"])' "${abl}/abliteration.json")"
	if [[ "${W1_OVERWRITE:-0}" != "1" && -f "${abl}/ablate/ablation_summary.json" ]]; then
		say "JailbreakBench on the abliterated ${direction} model is finished"
	else
		"${BIN}" ablate --model_path "${abl}/$(basename "${abl}").gguf" --vector_dir "${DIR}" --layer "${layer}" \
			--output_dir "${abl}/ablate" "${OVERWRITE[@]}" ${ABLATE_FLAGS:-}
	fi
done

"${BIN}" charts --run_dir "${DIR}" >/dev/null
pictures="${OUT}/w1"
bash tools/screenshot_charts.sh "${DIR}" "${pictures}" >/dev/null
{
	cat <<'EOF'
# W1: the method on a model that refuses

Qwen2.5-Coder-1.5B-Instruct (Qwen's Q4_K_M GGUF, dequantised to float32; `--model_path
qwen2.5-coder-1.5b-instruct`) refuses harmful requests, unlike the bundled SmolLM2-135M-Instruct. W1 runs
the spec's method at its defaults on it, then sets the seed's harmless-refusal vector beside Arditi et
al.'s (2024) harmful–harmless direction on the same model. Everything below is made by `make w1`
(`tools/w1.sh`) from the run folder's own files; nothing is typed in by hand.

## In brief

Each claim of Arditi et al. (2024, arXiv:2406.11717) beside what W1 measured (`tools/w1_headline.py`,
from the run folder's files):

EOF
	python3 tools/w1_headline.py "${DIR}" testdata/judge/w1_labels.jsonl
	echo
	python3 tools/w1_abliteration.py "${DIR}"
	cat <<'EOF'

The paper's per-model figures are not copied here: W1 measures the same quantities on a model the paper
did not study, with two offline judges (substring matching, as the spec, and the stricter `leading`),
both measured against hand labels of these replies in [judges.md](judges.md). How long W1 takes beside
transformers, in float32 and bfloat16: [speed.md](speed.md) (`make bench-w1`).

EOF
	# From docs/, so the pictures' links are relative to docs/w1.md (and the
	# command the report shows runs from there).
	(cd "${OUT}" && "${BIN}" report --run_dir "$(realpath --relative-to=. "${ROOT}/${DIR}")" --title "Results" --charts w1)
} >"${OUT}/w1.md.tmp"
mv "${OUT}/w1.md.tmp" "${OUT}/w1.md"
say "wrote ${OUT}/w1.md (pictures in ${pictures}/)"
