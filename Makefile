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
	@echo "serving the HTTP API on the demo's stores at http://127.0.0.1:8000 (Ctrl-C stops it; OpenAPI at /schema)"
	$(BIN)/uvicorn api.app:app --host 127.0.0.1 --port 8000 --workers 1 --log-level warning

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/qc.py
	$(BIN)/python bench/hindcast.py
	$(BIN)/python bench/model.py
	$(BIN)/python bench/api.py

bench-quick: install
	$(BIN)/python bench/ingest.py --quick
	$(BIN)/python bench/qc.py --quick
	$(BIN)/python bench/hindcast.py --quick
	$(BIN)/python bench/model.py --quick
	$(BIN)/python bench/api.py --quick

schema: install
	$(BIN)/forecast catalog schema --out catalogs/schema.json

clean:
	rm -rf .forecast .pytest_cache
