#!/usr/bin/env bash
# Every GPU measurement that issues 2-5 ask for, in one run sized for a 15-minute device session
# (about 10 minutes of work). Each step has its own time limit so that one slow step cannot eat
# the others; each writes its table to $OUT/<step>.txt (or ./bench_gpu/).
#
#   bash bench/gpu_all.sh                    # on a machine with a CUDA GPU, optiqa installed
#   PYTHON=.venv/bin/python bash bench/gpu_all.sh
#
# Scaled-down sizes: assess_speed times 2000 pairs and prints the KADID-10k (10,125 pairs) time
# at that rate; train_step runs the paper configuration without torch.compile first (compile
# warm-up is about 200 s) and then with it if time is left.
set -u
out=${OUT:-bench_gpu}
py=${PYTHON:-python}
mkdir -p "$out"
export HF_HUB_OFFLINE=1
"$py" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.cuda.get_device_name(0), torch.__version__)" | tee "$out/device.txt" || exit 2

step() {  # step NAME LIMIT_S ARGS...: one bench, its output kept even when it times out
    local name=$1 limit=$2
    shift 2
    echo "== $name ($limit s max): $*"
    timeout "$limit" "$py" "$@" 2>&1 | tee "$out/$name.txt"
}

step metrics 90 bench/metrics_speed.py --device cuda
step transfer 60 bench/transfer_speed.py --device cuda
step assess 240 bench/assess_speed.py --device cuda --pairs 2000 --deep-pairs 2000 \
    --repeats 1 --batch-size 32 --workers 8
step train 120 bench/train_step.py --device cuda --config paper --no-compile
step train_compile 180 bench/train_step.py --device cuda --config paper
