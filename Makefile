# Two commands set everything up on a fresh machine:
#   make run    install, build the index if missing or stale, start the bot
#   make test   install, run the tests
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: run test bench install

install: $(VENV)/.installed

# torch is installed first, pinned, from PyTorch's CPU index (pip's own find-links, as on these
# machines, are still searched): PyPI's torch for Linux pulls several GB of CUDA packages.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --timeout 20 --index-url $(TORCH_INDEX) torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: install
	$(BIN)/policybot run

test: install
	$(BIN)/pytest -q --timeout=1800

bench: install
	$(BIN)/python bench/bench_runtime.py
	$(BIN)/python bench/bench_retrieval.py
