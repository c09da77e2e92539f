# The two commands of the README: `make run` (set up and start the dashboard) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test setup bench

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	touch $@

setup: $(VENV)/.installed
	$(PY) -m core setup

run: setup
	$(PY) app.py --server.port $(PORT)

test: $(VENV)/.installed
	$(PY) -m pytest

bench: $(VENV)/.installed
	$(PY) -m core bench ingest
	$(PY) -m core bench latency
	$(PY) -m core bench accuracy
