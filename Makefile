# `make demo` and `make test` each create .venv when it is missing, then run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.trainlab-installed

.PHONY: demo test test-all test-browser install clean postgres chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/trainlab train recipes/demo.yaml --report
	@echo "next: a whole lab in one command, e.g. the MNIST optimizer x schedule grid in its few-minutes variant (docs/labs.md):"
	@echo "  $(BIN)/trainlab lab recipes/labs/mnist-optimizers.yaml --quick"

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

# The browser test of `trainlab serve`'s page (tests/test_browser.py): Debian's chromium, driven by
# playwright (the Python package only: it uses that chromium, and downloads no browser of its own)
chromium:
	command -v chromium >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

test-browser: $(STAMP) chromium
	$(BIN)/python -m pip install -q -e ".[dev,browser]"
	$(BIN)/python -m pytest -q -m slow tests/test_browser.py

# PostgreSQL server binaries for tests/test_postgres_study.py (a throwaway server, no system
# service is started); Debian installs them under /usr/lib/postgresql/VERSION/bin, off PATH
postgres:
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; }

clean:
	rm -rf runs .pytest_cache
