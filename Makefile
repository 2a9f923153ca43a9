# Two commands do everything on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian's chromium drives the console's browser tests (Playwright; never a browser download)
CHROMIUM := /usr/bin/chromium

.PHONY: install browser demo test test-fast bench bench-quick schema clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the console's browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	else \
		echo "the console's browser tests need Debian's chromium at $(CHROMIUM): sudo apt-get install chromium" >&2; exit 1; \
	fi

browser: $(CHROMIUM)

demo: install
	$(BIN)/forecast demo --serve

test: install browser
	$(BIN)/python -m pytest -q --durations=25

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/qc.py
	$(BIN)/python bench/hindcast.py
	$(BIN)/python bench/model.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/console.py
	$(BIN)/python bench/worker.py
	$(BIN)/python bench/monitor.py

bench-quick: install
	$(BIN)/python bench/ingest.py --quick
	$(BIN)/python bench/qc.py --quick
	$(BIN)/python bench/hindcast.py --quick
	$(BIN)/python bench/model.py --quick
	$(BIN)/python bench/api.py --quick
	$(BIN)/python bench/console.py --quick
	$(BIN)/python bench/worker.py --quick
	$(BIN)/python bench/monitor.py --quick

schema: install
	$(BIN)/forecast catalog schema --out catalogs/schema.json

clean:
	rm -rf .forecast .pytest_cache
