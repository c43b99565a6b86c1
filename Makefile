# The two commands a fresh machine needs: `make setup`, then `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test test-unit bench clean
setup:            ## venv, pinned deps, Horovod build (cached), editable install
	bash scripts/setup.sh

test:             ## every default test tier, in tier order (unit, integration, cluster, e2e)
	$(PY) -m pytest -ra

test-unit:        ## fast: no JVM
	$(PY) -m pytest -ra tests/unit

bench:            ## benchmarks (--quick mode)
	$(PY) -m benchmarks --quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
