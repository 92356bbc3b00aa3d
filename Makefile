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

# The main job: a small real study (studies/demo.yaml) and its report.  Rerunning
# it skips finished runs and resumes unfinished ones.  If some runs fail, the
# report of the others is still written and the target fails.
demo: $(STAMP)
	@start=$$(date +%s); \
	$(PY) -m learners.study --spec studies/demo.yaml --workdir runs/demo --workers 2; rc=$$?; \
	if [ $$rc -le 1 ]; then $(PY) -m learners.study.report runs/demo || rc=1; fi; \
	echo "main job finished (exit $$rc) in $$(( ($$(date +%s) - start) / 60 )) min; report: runs/demo/report/report.md"; \
	exit $$rc

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q --runslow

# The throughput figures.  The other scripts in benchmarks/ read a finished run
# or study (action_gap, cost_rates) or take ~20 min (action_noise): run those by hand.
THROUGHPUT = env_throughput dataset_build dataset_read learner_throughput online_throughput

bench: $(STAMP)
	set -e; for b in $(THROUGHPUT); do $(PY) benchmarks/$$b.py; done

clean:
	rm -rf $(VENV) runs
