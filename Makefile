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

# The built-in example: the whole study in miniature on the built-in photos, CPU only, ~3 min.
# 1 metrics as IQA models on sample pairs; 2 metrics benchmarked on the known-order set;
# 3 an SR model trained with L1 + SSIM + an adversarial term from a discriminator on ImageNet
#   EfficientNet-Lite0; 4 that model evaluated against bicubic; 5 the discriminator's backbone
#   reused for IQA (random vs ImageNet vs GAN-trained init) and as a zero-shot quality score.
# A rerun resumes the training run (complete by then); --resume is only given once the run exists,
# because resuming a run that does not exist is an error.
DEMO_RUN := $(DEMO)/study/runs/tiny_cpu
demo: $(STAMP)
	$(BIN)/optiqa samples $(DEMO)/samples
	$(BIN)/optiqa score -q -m psnr -m ssim -m ms_ssim -m gmsd -m fsim -m dists_effnet_lite0 \
		$(DEMO)/samples/distorted $(DEMO)/samples/reference
	$(BIN)/optiqa assess -m psnr -m ssim -m gmsd -m fsim -m dists_vgg16_r -m dists_effnet_lite0 \
		-d synthetic --store $(DEMO)/study --json $(DEMO)/assess.json
	$(BIN)/optiqa train configs/train/tiny_cpu.yaml --study $(DEMO)/study -q \
		$$(test -f $(DEMO_RUN)/config.yaml && echo --resume) \
		'network_d={type: backbone, backbone: effnet_lite0, head: patch}'
	$(BIN)/optiqa evaluate bicubic --set photos=builtin:samples/256 -m dists_effnet_lite0 \
		--means-only
	$(BIN)/optiqa evaluate $(DEMO_RUN) --set photos=builtin:samples/256 -m dists_effnet_lite0 \
		--means-only --save-images $(DEMO)/restored
	for init in random imagenet gan:$(DEMO_RUN); do \
		$(BIN)/optiqa transfer --backbone effnet_lite0 --init $$init --kind nr -d synthetic \
			--repeats 3 --store $(DEMO)/study || exit 1; done
	$(BIN)/optiqa transfer --zero-shot $(DEMO_RUN) -d synthetic --store $(DEMO)/study

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/metrics_speed.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
