# The two commands a new user needs: `make run` (serve the API with an embedded worker) and
# `make test` (the whole suite). Both create .venv and install everything themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Exact pin, so that no range ever pulls another build. The project's own machines and CI find
# this version as a CPU wheel locally; elsewhere PyPI's Linux wheel carries CUDA (gigabytes), and
# `make test TORCH_INDEX_URL=<a CPU wheel index>` takes a CPU build instead. The worker's Docker
# image installs the CUDA build.
TORCH_VERSION ?= 2.13.0
TORCH_INDEX_URL ?=
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION) $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python -m worker.local

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check optfb api worker store bench tests
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
