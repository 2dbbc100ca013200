# Two commands for a newcomer: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export USERNAME ?= $(or $(USER),recops)
export RECOPS_HOME ?= $(CURDIR)/.recops
# Metaflow's local datastore and metadata live under the same root as everything else.
export METAFLOW_DATASTORE_SYSROOT_LOCAL ?= $(RECOPS_HOME)

.PHONY: demo test lint install bench clean infra-check

install: $(STAMP)

# Exact versions come from constraints.txt, so every fresh machine installs the same set.
$(STAMP): pyproject.toml constraints.txt
	@echo "Installing the pinned dependency set into $(VENV) (first run only, a few minutes)..."
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check pip==26.3
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

demo: $(STAMP)
	@echo "== baseline: most-popular on the built-in synthetic sessions =="
	$(BIN)/recops train --dataset synthetic --model popular --out $(RECOPS_HOME)/runs/demo-popular
	@echo "== TrainRecommenderFlow (Metaflow, local): validate, split, train SASRec, evaluate, report, register + gate =="
	$(BIN)/python flows/train_recommender.py --no-pylint run --dataset synthetic --model sasrec
	@echo "== MLflow registry =="
	$(BIN)/recops registry list
	@echo "== BentoML: package the champion, serve it on 127.0.0.1, one request, shut down =="
	$(BIN)/recops bento build --alias champion
	$(BIN)/recops serve --port 3917 --smoke '{"session": [11, 42, 7], "k": 5}'
	@echo "== Continuous training (Prefect): new events with shifted popularity land in $(RECOPS_HOME)/incoming =="
	$(BIN)/recops simulate-events $(RECOPS_HOME)/incoming/demo-0001.csv --sessions 500 --shift-popularity
	@echo "== One retrain cycle: detect change and drift, train (Metaflow), gate, bento, deploy =="
	$(BIN)/recops retrain
	@echo "== The deployed model answers (recops schedule serve would run this nightly and hourly) =="
	$(BIN)/recops serve --port 3917 --smoke '{"session": [11, 42, 7], "k": 5}'

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) lint
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/recops bench quality --dataset ml-100k:recbole --seeds 1,2,3 --json

clean:
	rm -rf $(VENV) .recops .pytest_cache .ruff_cache

# Terraform checks that need no AWS account (infra/check.sh prints one line per stage). checkov
# lives in its own virtualenv: its dependencies conflict with the project's pins.
INFRA_VENV := .venv-infra
INFRA_STAMP := $(INFRA_VENV)/.installed

$(INFRA_STAMP): infra/checkov-requirements.txt
	@echo "Installing checkov into $(INFRA_VENV) (first run only, a minute or two)..."
	@test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV)
	@$(INFRA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/checkov-requirements.txt
	@touch $@

infra-check: $(INFRA_STAMP)
	@bash infra/check.sh
