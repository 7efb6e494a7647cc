# ragpipe: `make run` sets everything up and serves the UI; `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INDEX ?= default
PORT ?= 8501
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# llama.cpp is built by scripts/llama_build.py: the fastest safe flags for this CPU (never
# native, never AMX), one cached wheel per flag set, and a decode check with the generic
# build as the fallback.
LLAMA := $(BIN)/python scripts/llama_build.py

.PHONY: install models ingest run serve test test-fast lint typecheck system-deps clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/llama_build.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU build of torch first, so nothing pulls a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(LLAMA) install
	$(BIN)/pip install --quiet -e '.[dev]'
	$(LLAMA) check || { $(LLAMA) install --generic && $(LLAMA) check; }
	touch $(STAMP)

models: install
	$(BIN)/ragpipe models prepare

ingest: models
	$(BIN)/ragpipe ingest corpus --index $(INDEX)

run: ingest serve

serve: install
	$(BIN)/ragpipe serve --port $(PORT)

# Debian packages for OCR and the browser test (installed when run as root).
system-deps:
	bash scripts/system-deps.sh

test: models system-deps
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not e2e and not slow"

lint: install
	$(BIN)/ruff check ragpipe ui tests benchmarks

typecheck: install
	$(BIN)/mypy

clean:
	rm -rf $(VENV) indexes/*/ models/*.gguf models/*.sha256
