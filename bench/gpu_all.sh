#!/usr/bin/env bash
# Every GPU measurement of issue 23, in one run sized for a 15-minute device session (about 8
# minutes of work). Each step has its own time limit so that one slow step cannot eat the
# others; each writes its table to $OUT/<step>.txt (or ./bench_gpu/).
#
#   bash bench/gpu_all.sh                          # on a machine with a CUDA GPU, optiqa installed
#   PYTHON=.venv/bin/python bash bench/gpu_all.sh
#   DEVICE=cpu TINY=1 bash bench/gpu_all.sh        # dry run of every step on the CPU, tiny sizes
#
# Steps: the metric-loss table against piq at 128 and 256 px (bench/metrics_speed.py); the
# KADID-sized assessment with dists_vgg16 (dists_vgg16_r when the pretrained VGG-16 is not on
# the machine: same cost) end to end through `optiqa assess` (bench/assess_scaling.py, the
# 10,125 pairs written first, in parallel); discriminator transfer; the paper training step
# (SwinIR x4, L1 + DISTS-VGG16, PatchGAN-SN, batch 16, HR 256) without torch.compile, then with
# it (compile warm-up about 200 s; bench/train_step.py prints the speed-up, peak memory and
# first-iteration losses).
set -u
out=${OUT:-bench_gpu}
py=${PYTHON:-python}
device=${DEVICE:-cuda}
tiny=${TINY:-0}
mkdir -p "$out"
export HF_HUB_OFFLINE=1
if [ "$device" = cuda ]; then
    "$py" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.cuda.get_device_name(0), torch.__version__)" | tee "$out/device.txt" || exit 2
else
    "$py" -c "import torch, os; print('CPU', os.cpu_count(), 'cores, torch', torch.__version__)" \
        | tee "$out/device.txt"
fi

step() {  # step NAME LIMIT_S ARGS...: one bench, its output kept even when it times out
    local name=$1 limit=$2
    shift 2
    echo "== $name ($limit s max): $*"
    # -u: a step cut off by its time limit still leaves what it printed
    timeout "$limit" "$py" -u "$@" 2>&1 | tee "$out/$name.txt"
}

if [ "$tiny" = 1 ]; then
    # every step once at toy sizes, to catch a broken argument before device time is spent
    step metrics 300 bench/metrics_speed.py --device "$device" --sections fr --batch 2 \
        --sizes 32 --repeats 1 --warmup 0 --no-pyiqa --metrics psnr ssim gmsd
    step assess 300 bench/assess_scaling.py --device "$device" --total 16 --workers 1 \
        --metrics ssim --plot "$out/assess_scaling.png"
    step transfer 300 bench/transfer_speed.py --device "$device" --size 32 --epochs 1
    step train 300 bench/train_step.py --device "$device" --config tiny --no-compile \
        --warmup 1 --iters 1 --rounds 1
    exit 0
fi

step metrics 100 bench/metrics_speed.py --device "$device" --sections fr --no-pyiqa
step assess 180 bench/assess_scaling.py --device "$device" --total 10125 --workers 12 \
    --batch-size 32 --metrics dists_vgg16 dists_vgg16_r --budget 120 \
    --folder /tmp/kadid_like --plot "$out/assess_scaling.png"
step transfer 40 bench/transfer_speed.py --device "$device"
step train 100 bench/train_step.py --device "$device" --config paper --no-compile
step train_compile 200 bench/train_step.py --device "$device" --config paper
