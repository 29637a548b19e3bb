# arl's own Makefile. `make test` and `make demo` start from nothing: they create .venv and install into it.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install test test-fast lint demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,plot]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check arl tests
	$(BIN)/ruff format --check arl tests
	$(BIN)/pyright

# The Docker tests need debootstrap to build the base image on an engine with no registry.
test: install lint
	@command -v debootstrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    apt-get install -y -q debootstrap >/dev/null; } || echo "debootstrap missing: Docker tests may be skipped"
	$(BIN)/python -m pytest -x -q $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -x -q -m "not docker" $(PYTEST_ARGS)

demo: install
	$(BIN)/python -m arl.demo $(DEMO_ARGS)

bench: install
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
