#!/usr/bin/env bash
# Workload W0's extraction (the spec's defaults) run three ways, to show the
# paths beyond one device are exact: once whole; split over several devices
# (--devices N, each N in DEVICES); and split into SHARDS shards
# (extract --shard i/M, one after another here, one per machine in a job
# array) merged with refusalkit merge. Prints a Markdown table: wall time,
# whether the response files are byte-identical to the whole run's, and the
# largest difference of the vector. The last line is JSON.
#
#   bash tools/scale_w0.sh                      # the bundled model on xla:cpu: DEVICES="3", SHARDS=4
#   MODEL=M BACKEND=xla:cuda DEVICES="2 4 8" bash tools/scale_w0.sh   # a GPU node (devices: GPUs)
#   SCALE_FLAGS="--n_samples 6 --n_completions 4 --max_new_tokens 24" \
#     REFUSAL_INSTRUCTION='Do not answer the question below; politely decline instead, starting with "I'"'"'m sorry".' \
#     bash tools/scale_w0.sh                    # a smoke run (a minute)
#
# DEVICES must divide the model's attention heads (the bundled SmolLM2 has 9:
# 3 and 9 only); a count that does not is refused in one line before loading.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${MODEL:-smollm2-135m-instruct}"
BACKEND="${BACKEND:-xla:cpu}"
DEVICES="${DEVICES:-3}"
SHARDS="${SHARDS:-4}"
OUT="${SCALE_DIR:-runs/scale_w0}"
BIN="$(realpath "${BIN:-bin/refusalkit}")"
FLAGS=(--model_path "${MODEL}" --backend "${BACKEND}" ${SCALE_FLAGS:-})
[[ -n "${REFUSAL_INSTRUCTION:-}" ]] && FLAGS+=(--refusal_instruction "${REFUSAL_INSTRUCTION}")
rm -rf "${OUT}" && mkdir -p "${OUT}"

secs() { local t0=$SECONDS; "$@" >/dev/null 2>>"${OUT}/log.txt"; echo $((SECONDS - t0)); }
extract() { "${BIN}" extract "${FLAGS[@]}" "$@"; }

rows=()
t_whole=$(secs extract --output_dir "${OUT}/whole")
rows+=("whole|1|${t_whole}")
for n in ${DEVICES}; do
	rows+=("devices|${n}|$(secs extract --output_dir "${OUT}/devices-${n}" --devices "${n}")")
done
t0=$SECONDS
shard_dirs=()
for ((i = 0; i < SHARDS; i++)); do
	extract --output_dir "${OUT}/shard-${i}" --shard "${i}/${SHARDS}" >/dev/null 2>>"${OUT}/log.txt"
	shard_dirs+=("${OUT}/shard-${i}")
done
"${BIN}" merge --output_dir "${OUT}/merged" "${shard_dirs[@]}" >/dev/null 2>>"${OUT}/log.txt"
rows+=("shards + merge|${SHARDS}|$((SECONDS - t0))")

python3 - "${OUT}" "${MODEL}" "${BACKEND}" "${rows[@]}" <<'EOF'
import json, struct, sys, os
out, model, backend, rows = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]

def vector(d):
    with open(os.path.join(d, "refusal_vector.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        e = h["refusal_vector"]
        f.seek(8 + n + e["data_offsets"][0])
        return struct.unpack("<%df" % (e["shape"][0] * e["shape"][1]), f.read(e["data_offsets"][1] - e["data_offsets"][0]))

files = ["compliant_responses.json", "refusal_responses.json", "filtered_compliant_responses.json", "filtered_refusal_responses.json"]
whole = vector(os.path.join(out, "whole"))
print("| run | devices or shards | seconds | response files as the whole run's | max \\|vector − whole run's\\| |")
print("|---|---:|---:|---|---:|")
summary = []
for r in rows:
    kind, n, s = r.split("|")
    d = {"whole": "whole", "devices": "devices-" + n, "shards + merge": "merged"}[kind]
    same = all(open(os.path.join(out, "whole", f), "rb").read() == open(os.path.join(out, d, f), "rb").read() for f in files)
    diff = max(abs(a - b) for a, b in zip(whole, vector(os.path.join(out, d))))
    print("| %s | %s | %s | %s | %.3g |" % (kind, n, s, "byte-identical" if same else "differ", diff))
    summary.append({"run": kind, "n": int(n), "seconds": int(s), "responses_identical": same, "max_vector_diff": diff})
print(json.dumps({"model": model, "backend": backend, "runs": summary}))
EOF
