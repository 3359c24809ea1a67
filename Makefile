# refusalkit — every target installs what it needs (from the package
# registries only) and can be run again safely.
#
#   make demo    the main job end to end on the bundled model: extract, evaluate, charts
#   make test    the test suite
#
# Every recipe runs with tools/setup/env.sh sourced: GOTOOLCHAIN=go1.27.3,
# the native backend and tokenizer library paths.

SHELL := /bin/bash
ENV   := source tools/setup/env.sh &&
MODEL ?= smollm2-135m-instruct

.PHONY: setup setup-test build test demo w1 bench bench-w1 bench-dtype notebook-check interop-check abliterate-check clean

setup:
	bash tools/setup/model.sh
	bash tools/setup/tokenizers.sh
	bash tools/setup/backend.sh

# What only the tests need: Chromium for the chart screenshots, Gemma 3 270M
# (base model) for the second family's real-weight reference test, and
# Qwen2.5-Coder-0.5B-Instruct (a model that refuses) for its transformers test.
setup-test:
	bash tools/setup/chromium.sh
	bash tools/setup/gemma3.sh
	bash tools/setup/qwen.sh 0.5b

build: setup
	$(ENV) go build -o bin/refusalkit ./cmd/refusalkit

test: build setup-test
	$(ENV) go vet ./...
	$(ENV) go test -count=1 -timeout 30m ./...
	$(MAKE) notebook-check

demo: build
	$(ENV) bash tools/demo.sh $(MODEL)

clean:
	rm -rf bin

# Workload W1: the method at the spec's defaults on Qwen2.5-Coder-1.5B-Instruct
# (a model that refuses; installed on first use), both directions ablated on
# JailbreakBench, and the report docs/w1.md (tools/w1.sh). About 2 hours on 2 cores.
w1: build
	bash tools/setup/chromium.sh
	$(ENV) bash tools/w1.sh

# Generation speed on every backend (ONNX Runtime included, installed here),
# then workload W0 (the spec's defaults): refusalkit beside transformers
# (tools/reference/hf_w0.py in the reference venv, installed here), then the
# naive method; the last line is JSON.
bench: build
	bash tools/setup/backend.sh --with-onnx
	bash tools/setup/pyref.sh
	$(ENV) go run ./cmd/genbench
	$(ENV) go run ./cmd/bench

# W1's work (Qwen2.5-Coder-1.5B-Instruct, the spec's refusal instruction) timed
# beside transformers on the same GGUF, per phase, at W1_SCALE of its query
# counts (transformers takes hours at full scale on 2 cores).
W1_SCALE ?= 0.1
W1_DTYPES ?= float32 bfloat16
bench-w1: build
	bash tools/setup/pyref.sh
	for d in $(W1_DTYPES); do $(ENV) go run ./cmd/bench --model_path qwen2.5-coder-1.5b-instruct --w0_only --scale $(W1_SCALE) --dtype $$d || exit 1; done

# Generation tokens/s, model memory and peak RSS per dtype (float32, bfloat16,
# float16) on the CPU backends, beside transformers on the same shape and dtypes.
bench-dtype: build
	bash tools/setup/pyref.sh
	$(ENV) bash tools/dtype_bench.sh

# Runs every notebook under notebooks/ headless through the GoNB kernel (installed
# into .cache/ first) and fails on any cell error; part of `make test`.
# NOTEBOOK_SAVE=1 copies the executed notebooks back (see tools/notebook_check.sh).
notebook-check: build
	$(ENV) bash tools/setup/notebook.sh && $(ENV) bash tools/notebook_check.sh

# The round trip through llama.cpp itself (not in `make test`: building llama.cpp
# takes several minutes on 2 cores, once; cached in .cache/llamacpp-build): builds
# llama.cpp from the pinned llama-cpp-python sdist, makes a small vector on the
# bundled model (runs/interop, kept), exports its selected row, and compares
# llama.cpp's steered first-token logits and greedy verdicts with refusalkit's
# (cmd/refusalkit/interop_test.go). INTEROP_LAYER / INTEROP_COEFF override the row
# and coefficient; the numbers land in runs/interop/interop.json.
INTEROP_DIR   ?= runs/interop
INTEROP_LAYER ?=
INTEROP_COEFF ?= 1
interop-check: build
	bash tools/setup/llamacpp_build.sh
	bash tools/setup/pyref.sh
	$(ENV) if [[ ! -f $(INTEROP_DIR)/eval_summary.json ]]; then \
	  bin/refusalkit extract --model_path $(MODEL) --n_samples 6 --n_completions 4 --max_new_tokens 32 \
	    --refusal_instruction "$$(printf '%s' 'Do not answer the question below; politely decline instead, starting with "I'"'"'m sorry".')" \
	    --output_dir $(INTEROP_DIR) --overwrite && \
	  bin/refusalkit evaluate --model_path $(MODEL) --vector_dir $(INTEROP_DIR) --n_validation_samples 8 --n_test_samples 4 \
	    --coefficients 0 1 --overwrite; fi
	$(ENV) REFUSALKIT_INTEROP_VECTOR_DIR=$(abspath $(INTEROP_DIR)) REFUSALKIT_INTEROP_LAYER=$(INTEROP_LAYER) \
	  REFUSALKIT_INTEROP_COEFF=$(INTEROP_COEFF) REFUSALKIT_INTEROP_OUT=$(abspath $(INTEROP_DIR))/interop.json \
	  go test -count=1 -tags interop -run 'Interop|FromPythonGGUF|ReadByPythonGGUF' -v ./cmd/refusalkit/ ./refusalkit/ ./refusalkit/ggufvec/

# transformers loads the abliterated folders refusalkit writes (every tiny family
# without post-norms) and matches PyTorch's own abliteration of the same weights
# (tools/reference/make_abliterated.py; the reference venv is installed here).
abliterate-check: build
	bash tools/setup/pyref.sh
	rm -rf .cache/abliterated && mkdir -p .cache/abliterated
	$(ENV) REFUSALKIT_ABLITERATED_OUT=$(CURDIR)/.cache/abliterated go test -count=1 -run TestAbliteratedMatchesTransformers ./refusalkit/abliterate/
	.cache/pyref/bin/python tools/reference/make_abliterated.py --check_written .cache/abliterated
