# Two commands on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
PORT ?= 8080

.PHONY: demo test soak bench lint chromium install

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,dask]'
	touch $@

# Runs a sample workflow with monitoring, then serves the dashboard over its database.
demo: install
	cd examples && ../$(PY) demo.py
	$(VENV)/bin/taskscope-visualize examples/runinfo/monitoring.db --port $(PORT)

# Installs Chromium for the browser tests with apt. Where that is impossible (no apt-get, or
# no root and no password-less sudo: HPC login nodes) it says so and carries on: the browser
# tests then skip, saying why. Where apt is usable a failed install is still an error.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && { [ -z "$(SUDO)" ] || sudo -n true 2>/dev/null; }; then \
	    $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; \
	  else \
	    echo "make chromium: cannot install Chromium here (needs apt-get and root or sudo);" \
	         "the browser tests will be skipped"; \
	  fi; }

test: install chromium
	$(PY) -m pytest

soak: install
	$(PY) -m pytest -m soak

bench: install
	$(PY) bench/throughput.py
	$(PY) bench/monitoring.py
	$(PY) bench/dask_throughput.py
	$(PY) bench/dashboard.py

# The same checks as .pre-commit-config.yaml and CI: lint, format, types, import boundaries.
lint: install
	$(VENV)/bin/ruff check taskscope tests bench
	$(VENV)/bin/ruff format --check taskscope tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
