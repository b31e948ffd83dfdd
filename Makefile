# farm: the two commands are `make run` (the demo) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test test-slow unit integration setup build clean

# Cython 3 compiles the per-request modules (farm/build.py, docs/building.md);
# it is a build tool, not a dependency: farm runs pure without it.
$(VENV)/.installed: pyproject.toml setup.py
	./scripts/setup-system
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q 'Cython>=3,<4' setuptools wheel
	FARM_NO_EXTENSIONS=1 $(PY) -m pip install -q --no-build-isolation -e '.[test]'
	touch $@

# The compiled modules, rebuilt where their .py or .pxd changed (seconds
# when nothing did; about a minute from scratch).
build: $(VENV)/.installed
	$(PY) setup.py -q build_ext --inplace -j 2

setup: build

run: setup
	$(VENV)/bin/farm demo

# The suite on the compiled build, then the unit tests again on the
# pure-Python import of the same modules (FARM_PURE=1). Tests marked slow
# (long scenarios: many reloads under load) run
# in `make test-slow`, which CI runs after `make test`.
test: setup
	./scripts/setup-system --test
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS) tests
	FARM_PURE=1 $(PY) -m pytest -q tests/unit

test-slow: setup
	./scripts/setup-system --test
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS) tests || [ $$? -eq 5 ]   # 5: none marked

unit: setup
	$(PY) -m pytest -q tests/unit
	FARM_PURE=1 $(PY) -m pytest -q tests/unit

integration: setup
	./scripts/setup-system --test
	$(PY) -m pytest -q tests/integration

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache farm/compiled.json
	find farm workers -name '*.so' -delete
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Debian package (packaging/README.md): dist/farm_VERSION_ARCH.deb with the
# compiled modules (Cython 3 from PyPI in a throwaway venv), checked by
# lintian; deb-test installs it here and runs it the way farm.service does.
# FARM_PURE_BUILD=1: a package without the compiled per-request modules,
# tested as such.
.PHONY: deb deb-test deb-test-systemd
DEB_TEST_ARGS := $(if $(FARM_PURE_BUILD),--pure)
deb:
	./packaging/build-deb

deb-test: deb
	/usr/bin/python3 scripts/deb-test $(DEB_TEST_ARGS)

# The same test under a real systemd: a Debian container booted with
# systemd-nspawn (about a minute the first time, then seconds).
deb-test-systemd: deb
	scripts/deb-test-systemd $(DEB_TEST_ARGS)

# Side by side with HAProxy and nginx (bench/README.md); under 10 minutes.
# BENCH_ARGS="--quick" (about 2 minutes) or scenario names: bench/run --list.
.PHONY: bench
bench: setup
	./bench/run $(BENCH_ARGS)
