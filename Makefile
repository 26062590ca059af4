# Two commands set everything up on a fresh machine:
#   make run    install, build the index if missing or stale, start the bot
#   make test   install, run the tests
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: run test bench install

install: $(VENV)/.installed

# torch is installed first, pinned, from PyTorch's CPU index: PyPI's torch for Linux pulls several GB of
# CUDA packages. Where that index cannot be reached (a mirror-only network, where plain torch==2.13.0 is
# the CPU build) it comes from pip's configured index; either way the line after says which build it took.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@if $(PYTHON) -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/torch/', timeout=10)" $(TORCH_INDEX) 2>/dev/null; then \
		echo "torch: from PyTorch's CPU index $(TORCH_INDEX)"; \
		$(BIN)/pip install --quiet --timeout 20 --index-url $(TORCH_INDEX) torch==2.13.0; \
	else \
		echo "torch: $(TORCH_INDEX) cannot be reached; torch==2.13.0 from pip's configured index"; \
		$(BIN)/pip install --quiet torch==2.13.0; \
	fi
	@$(BIN)/python -c "import torch; print('torch', torch.__version__, 'with CUDA ' + torch.version.cuda if torch.version.cuda else '(CPU-only build)')"
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: install
	$(BIN)/policybot run

test: install
	$(BIN)/pytest -q --timeout=1800

bench: install
	$(BIN)/python bench/bench_runtime.py
	$(BIN)/python bench/bench_retrieval.py
	$(BIN)/python bench/load_teams.py
