PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --constraint constraints.txt

.PHONY: demo test lint install install-dev clean pg-server browser

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## The main job: the built-in safety suite on the default model, with an HTML report.
demo: install
	$(VENV)/bin/oversight eval --model default --out runs/demo
	$(VENV)/bin/oversight report runs/demo -o runs/demo/report.html

lint: install-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

## PostgreSQL server binaries (Debian package) for the store tests, which start their own
## throwaway server from /usr/lib/postgresql/*/bin; the system cluster is not used.
pg-server:
	@if [ -d /usr/lib/postgresql ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing the postgresql package (for the store tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
		echo "PostgreSQL server binaries missing: run 'sudo apt-get install -y postgresql'; the store's PostgreSQL tests skip without them (and fail in CI)"; \
	fi

## Headless Chromium (Debian package) for the web app's browser tests, driven by Playwright
## with executable_path=/usr/bin/chromium (Playwright's own browser download is never used).
browser:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing the chromium package (for the web app's browser tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "chromium missing: run 'sudo apt-get install -y chromium'; the browser tests skip without it (and fail in CI)"; \
	fi

## Every test, plus ruff and mypy over src/.
test: lint pg-server browser
	$(VENV)/bin/pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
