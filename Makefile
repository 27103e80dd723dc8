# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install demo test lint unit e2e kube golden lock clean

$(STAMP):
	rm -f $(VENV)/.installed-*
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/xdsctl demo --config-dir examples

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest -m "not e2e"

e2e: $(STAMP)
	$(BIN)/pytest -m e2e

# The Kubernetes suite: builds kube-apiserver, etcd and kustomize once (tests/kube/README.md).
kube: $(STAMP)
	$(BIN)/pytest -m kube tests/kube

golden: $(STAMP)
	UPDATE_GOLDEN=1 $(BIN)/pytest tests/translator

# Re-pin every dependency from pyproject.toml into requirements.lock.
lock:
	rm -rf /tmp/gateway-xds-lock && $(PYTHON) -m venv /tmp/gateway-xds-lock
	/tmp/gateway-xds-lock/bin/pip install --quiet setuptools==80.9.0
	/tmp/gateway-xds-lock/bin/pip install --quiet -e '.[dev]'
	/tmp/gateway-xds-lock/bin/pip freeze --all --exclude-editable | grep -v "^pip==" > requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
