# The two commands of the README: `make run` (set up and start the dashboard) and `make test` (the whole suite,
# what CI runs). `make check` is the fast lane: ruff, mypy, and the tests that need no browser and no end-to-end
# training or all twelve files (`-m "not browser and not slow"`).
# The install variant follows the machine: requirements-gpu.txt where `nvidia-smi` works, else the lean
# requirements-cpu.txt (override with `make VARIANT=cpu ...` or `VARIANT=gpu`).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
VARIANT ?= $(shell nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
OTHER_XGBOOST := $(if $(filter gpu,$(VARIANT)),xgboost-cpu,xgboost nvidia-nccl-cu12)

.PHONY: run test check lint setup bench

$(VENV)/.installed: requirements.txt requirements-cpu.txt requirements-gpu.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	@# xgboost and xgboost-cpu ship the same module: drop the other variant's package before switching
	$(PY) -m pip uninstall -y $(OTHER_XGBOOST) >/dev/null 2>&1 || true
	$(PY) -m pip install -r requirements-$(VARIANT).txt
	echo $(VARIANT) > $@

setup: $(VENV)/.installed
	$(PY) -m core setup

run: setup
	$(PY) app.py --server.port $(PORT)

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m mypy

check: lint
	$(PY) -m pytest -q -m "not browser and not slow"

bench: $(VENV)/.installed
	$(PY) -m core bench ingest
	$(PY) -m core bench latency
	$(PY) -m core bench accuracy
