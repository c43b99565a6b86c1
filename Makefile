# The two commands a fresh machine needs: `make setup`, then `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test test-unit bench bench-smoke clean
setup:            ## venv, pinned deps, Horovod build (cached), editable install
	bash scripts/setup.sh

test:             ## every test tier: unit, integration, cluster, compat, slurm (root); beside them scale, e2e, hosts (root)
	PY=$(PY) bash scripts/test.sh

test-unit:        ## fast: no JVM
	$(PY) -m pytest -ra tests/unit

bench:            ## benchmarks (--quick mode)
	$(PY) -m benchmarks --quick

bench-smoke:      ## CI's smoke check: the quick data path and exchange parts
	$(PY) -m benchmarks --quick --only data_path,exchange

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
