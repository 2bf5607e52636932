# Two commands for a fresh machine (see README.md):
#   make demo   create .venv from pyproject.toml and materialize every asset on the demo data
#   make test   run the test suite (installs first if needed)
VENV   ?= .venv
PY     := $(VENV)/bin/python
# CPU build from local disk; on a GPU box: make demo TORCH=torch==2.13.0+cu128 (or your wheel)
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: setup demo test ui gc lint bench
setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: setup
	$(PY) -m pipeline.cli demo

test: setup
	$(VENV)/bin/pytest

ui: setup
	$(PY) -c "from pipeline.cli import prepare_instance_home as p; print(p())" > /dev/null
	DAGSTER_HOME=$$($(PY) -c "from pipeline import settings; print(settings.dagster_home_default())") \
	  $(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

gc: setup
	$(PY) -m pipeline.cli gc

lint: setup
	$(VENV)/bin/ruff check .
