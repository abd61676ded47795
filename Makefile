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

chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

test: install chromium
	$(PY) -m pytest

soak: install
	$(PY) -m pytest -m soak

bench: install
	$(PY) bench/throughput.py
	$(PY) bench/monitoring.py
	$(PY) bench/dask_throughput.py
	$(PY) bench/dashboard.py

lint: install
	$(VENV)/bin/ruff check taskscope tests bench
