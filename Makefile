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

demo: $(STAMP)
	$(BIN)/optiqa samples $(DEMO)/samples
	$(BIN)/optiqa score -m psnr -m ssim -m ms_ssim -m gmsd -m fsim -m dists_effnet_lite0 \
		$(DEMO)/samples/distorted $(DEMO)/samples/reference

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/metrics_speed.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
