# Two entry points: `make demo` (built-in example, no downloads) and `make test` (offline test suite).
# Both create or reuse a virtual environment in .venv and install the project into it.
PYTHON ?= python3
VENV ?= .venv
# PyTorch is installed first and explicitly so that pip does not resolve a different build;
# override e.g. TORCH="torch torchvision" to take your platform's default.
TORCH ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin
STAMP := $(VENV)/.optiqa-installed
DEMO ?= demo

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch, torchvision" 2>/dev/null || $(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

# The built-in example (configs/study/quick.yaml): the whole study in miniature, offline, on the
# CPU: 4 fidelity losses x (no discriminator + a patch- and an image-level discriminator on
# ImageNet EfficientNet-Lite0 at two weights) = 20 trained models, assessment of the losses on the
# known-order set, evaluation of every model on held-out photos, discriminator transfer and the
# report. A rerun continues where it stopped and redoes nothing that is finished.
demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/optiqa study configs/study/quick.yaml --out $(DEMO)/study

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/metrics_speed.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
