# stepml - every target creates .venv in the checkout when it is missing.
SHELL := /bin/bash
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Lambda runs python3.12: prefer a 3.12 interpreter (pyenv's, if present) so that models trained
# locally load on Lambda and `sam build` finds python3.12 on PATH.
BASE_PYTHON ?= $(shell \
  for v in $$(pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.|$$)' | sort -V | tail -1); do \
    echo "$$(pyenv root)/versions/$$v/bin/python"; done; \
  command -v python3.12 || command -v python3)
BASE_PYTHON := $(firstword $(BASE_PYTHON))

# The seed datasets: a local mirror folder (CI points it at ../shared/datasets).
export STEPML_DATA_DIR ?= $(wildcard $(CURDIR)/../shared/datasets)
export PATH := $(BIN):$(PATH)

.PHONY: venv demo test build deploy lint bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(BASE_PYTHON)"; $(BASE_PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

venv: $(STAMP)

demo: venv  ## run the whole pipeline offline on Adult and print a prediction
	$(BIN)/stepml demo

test: venv  ## everything: unit, functional, end-to-end, template checks and the SAM build
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check src functions tests

clean:
	rm -rf .aws-sam .pytest_cache
