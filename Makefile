# Fresh-machine entry points: `make test` and `make demo` each set up .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch first and pinned: this machine has the 2.13.0 CPU wheel locally; an unpinned
# torch would pull several GB of CUDA packages.
TORCH_PIN := torch==2.13.0
PYTEST_ARGS ?=

# The torch-free lane: a fresh venv with only the runtime (`.[cpu]`) and pytest, no torch, running
# the runtime tests (the shipped engines load and segment; tests needing torch skip). pytest runs
# from inside the venv folder so that the installed package, not this checkout's folders, is imported.
RUNTIME_VENV := .venv-runtime
RUNTIME_TESTS := test_runtime_shipped.py test_import_rule.py test_pipeline.py test_manifest.py test_answer.py \
	test_metrics.py test_rewards.py test_qwen_preprocess.py test_qwen_rope.py test_segmenter_runtime.py \
	test_reasoner_runtime.py test_end_to_end.py test_cli.py

.PHONY: setup test test-all test-runtime lint demo clean

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

test-runtime:
	rm -rf $(RUNTIME_VENV)
	$(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/python -m pip install -q ".[cpu]" pytest
	cd $(RUNTIME_VENV) && SEGZERO_EDGE_RUNTIME_LANE=1 bin/python -m pytest -q -p no:cacheprovider \
		-m "not slow and not gpu and not trt" $(addprefix $(CURDIR)/tests/,$(RUNTIME_TESTS)) $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check segzero_edge runtime export train tests bench recipes

demo: $(STAMP)
	$(VENV)/bin/segzero-edge demo

clean:
	rm -rf $(VENV) $(RUNTIME_VENV) build *.egg-info .pytest_cache .ruff_cache
