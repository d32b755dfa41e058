# Fresh-machine entry points: `make test` and `make demo` each set up .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch first and pinned: this machine has the 2.13.0 CPU wheel locally; an unpinned
# torch would pull several GB of CUDA packages.
TORCH_PIN := torch==2.13.0
PYTEST_ARGS ?=

.PHONY: setup test test-all lint demo clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not gpu and not trt" -n 2 $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check segzero_edge runtime export train tests bench recipes

demo: $(STAMP)
	$(VENV)/bin/segzero-edge demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
