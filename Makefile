# Two commands on a fresh machine: `make run` (install + start the app), `make test` (install + test).
# Installs go into a project-local virtual environment; a stamp file per extra makes a second run
# skip pip entirely, so llama-cpp-python (a ~6 min source build) is compiled once.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: run test install install-test bench clean llama-server

run: $(VENV)/.installed
	$(PY) app.py $(ARGS)

test: $(VENV)/.installed-test
	$(PY) -m pytest $(ARGS)

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Storyteller needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml setup.py storyteller/engine/router_tap.c storyteller/engine/ecma_regex.cpp | $(PY)
	$(PY) -m pip install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install -e '.[test]'
	touch $@

# llama.cpp's llama-server and ggml-rpc-server from the source the pinned llama-cpp-python vendors, built
# once into the per-user cache folder (its path is printed) and reused; the server tests build it too.
llama-server: $(VENV)/.installed
	$(PY) -m storyteller.engine.remote.server_build -j 2

# Timing belongs here, never in `make test`: the quick suite takes ~10 minutes on a 2-core machine.
bench: $(VENV)/.installed-test
	$(PY) bench/suite.py

clean:
	rm -rf $(VENV) build *.egg-info
