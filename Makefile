# Two commands on a fresh clone: `make run` and `make test`. Only python3 (3.11+) and make needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 3000
# DAGSTER_HOME is left to the CLI, which applies one rule for `run` and `ui`: DAGSTER_HOME if set,
# else the project root (this directory, where dagster.yaml is).

.PHONY: run test ui lint bench services-stop clean workers

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: create .venv, install, materialise the pipeline on the embedded services, print a summary
run: $(STAMP)
	$(BIN)/stress-pipeline run

## test: the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest

## ui: the Dagster UI (webserver and daemon) on workspace.yaml, http://127.0.0.1:$(PORT) (make ui PORT=3001)
ui: $(STAMP)
	$(BIN)/stress-pipeline ui --port $(PORT)

## workers: N Celery workers of the sweep job on this machine until Ctrl-C (make workers N=2; STRESS_CELERY_BROKER)
N ?= 2
workers: $(STAMP)
	$(BIN)/stress-pipeline workers --count $(N)

lint: $(STAMP)
	$(BIN)/ruff check .

services-stop: $(STAMP)
	$(BIN)/stress-pipeline services stop

clean: services-stop
	rm -rf .stress history schedules storage logs .logs_queue .nux .telemetry
