# arl's own Makefile. `make test` and `make demo` start from nothing: they create .venv and install into it.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: codex-bin install test test-fast lint demo bench clean debootstrap chromium slurm

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# the distribution was named arl before arl-research: one editable install, not two sharing the package
	$(BIN)/python -m pip uninstall -q -y arl >/dev/null 2>&1 || true
	$(BIN)/python -m pip install -q -e '.[dev,plot]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check arl autoresearch_lab hooks tests
	$(BIN)/ruff format --check arl autoresearch_lab hooks tests
	$(BIN)/pyright

# Debian packages the demo and the tests want: debootstrap builds the sandbox's base image on an engine that
# reaches no registry; chromium runs the report's browser tests; slurm (slurm-wlm and munge) runs the private SLURM
# cluster of the SLURM engine's tests (those tests skip without it, and fail under ARL_REQUIRE_DOCKER=1). Each is
# installed as root, or through sudo when that needs no password; otherwise say how, and go on. A target is its own
# command and package unless CMD_/PKGS_ say otherwise.
WHY_debootstrap = needed only when no registry answers
WHY_chromium = the report's browser tests will skip
WHY_slurm = the SLURM engine's tests will skip
CMD_slurm = slurmctld
PKGS_slurm = slurm-wlm munge
debootstrap chromium slurm:
	@command -v $(or $(CMD_$@),$@) >/dev/null || { \
	  command -v apt-get >/dev/null && { \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else false; fi && \
	    echo "installing $@ (apt-get install $(or $(PKGS_$@),$@))" && \
	    { $$SUDO apt-get install -y -q $(or $(PKGS_$@),$@) >/dev/null 2>&1 || \
	      { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q $(or $(PKGS_$@),$@) >/dev/null; }; }; }; } || \
	  echo "$@ missing (sudo apt-get install $(or $(PKGS_$@),$@)): $(WHY_$@)"

test: install lint debootstrap chromium slurm codex-bin
	$(BIN)/python -m pytest -x -q $(PYTEST_ARGS)

# The real codex CLI for the broker's test of what codex sends (tests/test_codex_requests.py): OpenAI's own wheel,
# into the test venv only (it is 400 MB installed; arl never needs it at run time).
CODEX_BIN = openai-codex-cli-bin==0.163.0
codex-bin: install
	@$(BIN)/python -c "import codex_cli_bin" 2>/dev/null || $(BIN)/python -m pip install -q "$(CODEX_BIN)" || \
	  echo "codex-bin missing ($(BIN)/pip install $(CODEX_BIN)): the real-codex broker test will skip"

test-fast: install
	$(BIN)/python -m pytest -x -q -m "not docker" $(PYTEST_ARGS)

demo: install debootstrap
	$(BIN)/python -m arl.demo $(DEMO_ARGS)

bench: install
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
