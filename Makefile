# Quick start: `make run` (create .venv, install, run the default problem) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/admm-tune run problems/breast_cancer.yaml --budget 50 --seed 0

# Three test processes (pytest-xdist: the suite mostly waits on child processes, time budgets and time-outs, so
# three keep two cores busy), each given whole files (module fixtures built once), those with the most slow tests
# first (tests/conftest.py); then the tests that compare timings taken at different moments, alone: another test's
# load would be in one timing only.
test: $(STAMP)
	$(BIN)/python -m pytest -n 3 --dist loadfile -m "not serial"
	$(BIN)/python -m pytest -m serial

bench: $(STAMP)
	$(BIN)/python benchmarks/search_quality.py

clean:
	rm -rf $(VENV) admm_runs .pytest_cache
