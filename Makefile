# The two commands of the quick start: `make demo` and `make test`.
# Each creates .venv and installs the project when needed, so either works first on a fresh clone.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint install chromium clean

# Installs into .venv once (again when pyproject.toml changes). The last step tells git the .gitattributes
# filter that strips notebook outputs on commit (skipped outside a git checkout).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	-git rev-parse --git-dir >/dev/null 2>&1 && $(BIN)/nbstripout --install
	touch $(STAMP)

install: $(STAMP)

# Headless Chromium (Debian's package) for tests/test_graphiql.py, installed when missing. The node
# packages of tests/node (the GraphQL-over-HTTP audits, playwright-core) are installed by the test
# suite itself, with npm ci from their lock file (tests/_node.py).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	command -v chromium >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium)

# The notebooks, then GraphiQL in headless Chromium: its screenshot is runs/graphiql.png.
demo: $(STAMP) chromium
	$(BIN)/python notebooks/run_all.py
	GRAPHIQL_SCREENSHOT=$(CURDIR)/runs/graphiql.png $(BIN)/python -m pytest -q -p no:cacheprovider \
		tests/test_graphiql.py -k chromium
	@echo "GraphiQL in headless Chromium: runs/graphiql.png"

# --nbval-lax also runs every notebook, at small scale (notebooks/conftest.py sets the parameters).
test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf runs .pytest_cache
