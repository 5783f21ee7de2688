# `make benchmark` and `make test` are the only set-up commands a fresh clone needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORK_DIR ?= work_dirs/smoke

.PHONY: setup benchmark test test-fast clean

setup: $(STAMP)

$(STAMP): requirements.txt setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-build-isolation --no-deps -e .
	touch $(STAMP)

benchmark: setup
	$(PY) tools/run_benchmark.py --suite smoke --work-dir $(WORK_DIR)

# every test (CI runs this); test-fast leaves out the `slow` ones (training runs, fresh
# interpreters, torchrun) for everyday work. One pytest-xdist worker per core (TEST_WORKERS=0:
# none); the tests themselves use one thread each.
TEST_WORKERS ?= auto
test: setup
	$(PY) -m pytest -n $(TEST_WORKERS)

test-fast: setup
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not slow"

clean:
	rm -rf work_dirs .pytest_cache
