# Two commands on a fresh machine: `make demo` runs the main job, `make test` the tests.
# Each creates .venv from pyproject.toml first (about 90 s, once).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export MUJOCO_GL ?= egl
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-all bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; Python 3.11 is required (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m envs.evaluate --teacher all --triplet all --episodes 20 --workers 2 \
	  --output runs/demo/teacher_table.json --video runs/demo/generalization_triplet1.gif

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q --runslow

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b; done

clean:
	rm -rf $(VENV) runs
