# Two commands do everything on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast bench bench-quick schema clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/forecast demo

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/qc.py
	$(BIN)/python bench/hindcast.py

bench-quick: install
	$(BIN)/python bench/ingest.py --quick
	$(BIN)/python bench/qc.py --quick
	$(BIN)/python bench/hindcast.py --quick

schema: install
	$(BIN)/forecast catalog schema --out catalogs/schema.json

clean:
	rm -rf .forecast .pytest_cache
