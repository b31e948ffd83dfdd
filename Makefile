# farm: the two commands are `make run` (the demo) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test unit integration setup clean

$(VENV)/.installed: pyproject.toml
	./scripts/setup-system
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

run: setup
	$(VENV)/bin/farm demo

test: setup
	./scripts/setup-system --test
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

unit: setup
	$(PY) -m pytest -q tests/unit

integration: setup
	./scripts/setup-system --test
	$(PY) -m pytest -q tests/integration

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Debian package (packaging/README.md): dist/farm_VERSION_all.deb, checked by
# lintian; deb-test installs it here and runs it the way farm.service does.
.PHONY: deb deb-test deb-test-systemd
deb:
	./packaging/build-deb

deb-test: deb
	/usr/bin/python3 scripts/deb-test

# The same test under a real systemd: a Debian container booted with
# systemd-nspawn (about a minute the first time, then seconds).
deb-test-systemd: deb
	scripts/deb-test-systemd

# Side by side with HAProxy and nginx (bench/README.md); under 10 minutes.
# BENCH_ARGS="--quick" (about 2 minutes) or scenario names: bench/run --list.
.PHONY: bench
bench: setup
	./bench/run $(BENCH_ARGS)
