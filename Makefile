# memory-bridge — every target keeps one virtualenv at .venv (python3.13 where present, as it matches
# the Lambda runtime; else python3). aws-sam-cli pins boto3 exactly, so it lives apart in .tools/sam.
# `make test` also runs the unit tier on the older Pythons the README promises (3.11, 3.12), each in
# its own .venv-3.x, on those this machine has.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY313 := $(firstword $(wildcard /root/.pyenv/versions/3.13*/bin/python3.13) \
          $(shell python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null))
PYTHON ?= $(if $(PY313),$(PY313),python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAM := .tools/sam/bin/sam
SAM_VERSION := 1.170.0
# sam build needs python3.13 on PATH for the python3.13 runtime (no Docker here).
SAM_PATH := $(if $(PY313),$(dir $(PY313)):)$(PATH)
PIP_FLAGS := --quiet --disable-pip-version-check

.PHONY: help venv tools run demo bench soak test lint typecheck unit unit-versions integration build deploy deploy-guided clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@echo "• creating $(VENV) with $(PYTHON) and installing the runtime and dev dependencies (once, ~1 min)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install $(PIP_FLAGS) --upgrade pip
	@$(BIN)/pip install $(PIP_FLAGS) -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## create .venv with the runtime and dev dependencies (the CLI lands in .venv/bin)

# The README promises Python 3.11 to 3.13 and Lambda runs 3.13 (the main .venv, every tier). The older
# ones get the unit tier only (seconds, and it imports every layer, CLI and dev module), each in its own
# virtualenv, made once like .venv. An interpreter is found in pyenv's versions, else on PATH (and must
# run: a pyenv shim for a version not installed does not). One the machine lacks is named and skipped.
OLDER_PYTHONS := 3.11 3.12
# What those runs take (tests/unit/test_version_matrix.py narrows it to show that a run of no test fails).
UNIT_ARGS := tests/unit
python_for = $(firstword $(wildcard $(HOME)/.pyenv/versions/$(1).*/bin/python$(1) /root/.pyenv/versions/$(1).*/bin/python$(1)) \
               $(shell python$(1) -c 'import sys; print(sys.executable)' 2>/dev/null))
OLDER_FOUND := $(foreach v,$(OLDER_PYTHONS),$(if $(call python_for,$(v)),$(v)))
OLDER_MISSING := $(filter-out $(OLDER_FOUND),$(OLDER_PYTHONS))

.venv-%/.installed: pyproject.toml
	@echo "• creating .venv-$* with $(call python_for,$*) for the unit tier on Python $* (once, ~1 min)"
	@$(call python_for,$*) -m venv .venv-$*
	@.venv-$*/bin/pip install $(PIP_FLAGS) --upgrade pip
	@.venv-$*/bin/pip install $(PIP_FLAGS) -e '.[dev]'
	@touch $@

.PRECIOUS: .venv-%/.installed
unit-versions: $(foreach v,$(OLDER_FOUND),.venv-$(v)/.installed) ## the unit tier on Python 3.11 and 3.12 (those the machine has)
	@# Every version runs even when one fails, then one line each; any failure, or no test run at all
	@# (pytest's exit 5), fails the target.
	@summary=$$(mktemp); log=$$(mktemp); failed=""; \
	for v in $(OLDER_FOUND); do \
		echo "• the unit tier on Python $$v (.venv-$$v)"; \
		.venv-$$v/bin/python -m pytest -q -p no:cacheprovider $(UNIT_ARGS) 2>&1 | tee $$log; code=$${PIPESTATUS[0]}; \
		echo "  Python $$(.venv-$$v/bin/python -c 'import platform; print(platform.python_version())'): $$(tail -n 1 $$log) (exit $$code)" >> $$summary; \
		[ $$code -eq 0 ] || failed="$$failed $$v"; \
	done; \
	for v in $(OLDER_MISSING); do \
		echo "  Python $$v: not on this machine, skipped (install it, e.g. pyenv install $$v, and run make test again)" >> $$summary; \
	done; \
	echo "• version matrix, the unit tier (Python 3.13 runs every tier next, in .venv):"; cat $$summary; rm -f $$summary $$log; \
	if [ -n "$$failed" ]; then echo "• the unit tier failed on Python$$failed"; exit 1; fi

$(SAM):
	@echo "• installing aws-sam-cli $(SAM_VERSION) into .tools/sam (once, ~1 min; sam build and the template tests use it)"
	@$(PYTHON) -m venv .tools/sam
	@.tools/sam/bin/pip install $(PIP_FLAGS) aws-sam-cli==$(SAM_VERSION)

CHECKOV := .tools/checkov/bin/checkov
CHECKOV_VERSION := 3.3.30
$(CHECKOV):
	@echo "• installing checkov $(CHECKOV_VERSION) into .tools/checkov (once, ~1 min; the template's security checks)"
	@$(PYTHON) -m venv .tools/checkov
	@.tools/checkov/bin/pip install $(PIP_FLAGS) checkov==$(CHECKOV_VERSION)

tools: $(SAM) $(CHECKOV) ## install aws-sam-cli and checkov, each in its own environment

run: venv ## run the bridge on the local stack (moto + Memory sandbox + local API front)
	@$(BIN)/python -m memory_bridge_dev.local_stack

demo: venv ## a scripted walk-through: send, break Memory, park, heal, replay, count
	@$(BIN)/python -m memory_bridge_dev.demo

bench: venv tools ## figures: cold start, warm path, replay throughput, memory, package size → bench/results/
	PATH="$(SAM_PATH)" $(BIN)/python -m memory_bridge_dev.bench

soak: venv ## fault injection: 5,000 messages, duplicates, Memory and AWS faults, killed replays, a killed backfill racing the webhooks, then an accounting
	@$(BIN)/python -m memory_bridge_dev.soak
	HYPOTHESIS_EXAMPLES=2000 $(BIN)/pytest -q tests/unit/test_webhook_properties.py tests/unit/test_redaction.py

lint: venv ## ruff (lint and format check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv ## mypy --strict
	$(BIN)/mypy

unit: venv ## the socket-free tier only (seconds)
	$(BIN)/pytest tests/unit

integration: venv ## moto's server and the Memory sandbox over loopback
	$(BIN)/pytest tests/integration

test: venv tools lint typecheck unit-versions ## everything CI runs: lint, types, unit on 3.11/3.12, all tiers on 3.13
	PATH="$(SAM_PATH)" $(BIN)/pytest

build: tools ## sam build (no Docker)
	@# sam's closing hints name a `sam` that is not on PATH here: point them at what works.
	@set -o pipefail; PATH="$(SAM_PATH)" SAM_CLI_TELEMETRY=0 $(SAM) build 2>&1 \
		| sed -e 's#sam validate#$(SAM) validate --lint#' -e 's#sam deploy --guided#make deploy-guided (or make deploy)#' \
		      -e 's#sam local invoke#make run (sam local needs Docker)#' -e 's#: sam sync#: $(SAM) sync#'

STORE_NAME ?= memory-bridge
STACK ?= memory-bridge
export STORE_NAME STACK
deploy: venv tools ## store + identity resolution + secret + sam deploy + Conversations webhook: STORE_NAME=… STACK=… [ALARM_EMAIL=…] [CONVERSATIONS_SERVICE=IS…] [FORCE_WEBHOOK=1] make deploy
	@# Through the environment, not pasted into the command: a name with a space, $ or ` stays one
	@# argument and is never run by the shell (setup then names the rule it breaks).
	PATH="$(SAM_PATH)" $(BIN)/memory-bridge setup --display-name "$$STORE_NAME" --stack-name "$$STACK" \
		$${AWS_REGION:+--region "$$AWS_REGION"} $${AWS_PROFILE:+--profile "$$AWS_PROFILE"} \
		$${CONVERSATIONS_SERVICE:+--conversations-service "$$CONVERSATIONS_SERVICE"} \
		$${FORCE_WEBHOOK:+--force} $${ALARM_EMAIL:+--parameter "AlarmEmail=$$ALARM_EMAIL"}

deploy-guided: build ## sam deploy --guided, for those who prefer to answer the questions
	PATH="$(SAM_PATH)" SAM_CLI_TELEMETRY=0 $(SAM) deploy --guided

clean: ## remove build output and caches (keeps .venv and .tools)
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
