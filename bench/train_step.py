"""The trainer's step vs a plain fp32 PyTorch loop over the same models and batch, in one run.

Both sides start from the same weights and see the same batch (crops of the built-in photos, LR by
MATLAB bicubic): one generator step (D frozen) and one discriminator step per iteration with Adam.
The plain loop is what one writes first: fp32, NCHW, no compile, no EMA, no NaN guard. The
trainer's step is :meth:`optiqa.train.trainer.Trainer.train_step` with the config's bf16 /
channels_last / compile flags, EMA and the NaN guard (one host sync per step). Timed blocks of
the two alternate (median ms/iter reported), so that a change in machine load hits both sides.
The first-iteration losses of both sides are printed to show they agree (within bf16 tolerance
when bf16 is on).

    python bench/train_step.py                          # CPU, configs/train/tiny_cpu.yaml
    python bench/train_step.py --device cuda --config paper
        # SwinIR-x4 classical + L1 + DISTS-VGG16 + PatchGAN(SN), batch 16, HR 256 (compile on)
    python bench/train_step.py --set train.bf16=true --set train.channels_last=true
    python bench/train_step.py --device cuda --config paper --json step.json
        # then: optiqa study configs/study/paper.yaml --dry-run --step-time step.json

``--config paper`` uses configs/train/swinir_x4_dists_vgg16_patchgan.yaml; when the VGG-16
weights are not on the machine, the fidelity term is ``dists_vgg16_r`` (the same network with
fixed random weights: identical cost).
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"tiny": REPO / "configs" / "train" / "tiny_cpu.yaml",
           "paper": REPO / "configs" / "train" / "swinir_x4_dists_vgg16_patchgan.yaml"}


def build(args):
    from optiqa.metrics import metric_available_offline
    from optiqa.train.config_checks import check_train_config
    from optiqa.train.datasets import build_train_datasets
    from optiqa.train.paths import read_train_config
    from optiqa.train.trainer import Trainer

    overrides = ["train.pixel_only_iter=0", "path.pretrain_network_g=null", "val=null",
                 "datasets.val=null", "datasets.train.dataroot_gt=builtin:samples"]
    if args.batch:
        overrides.append(f"datasets.train.batch_size={args.batch}")
    if args.gt_size:
        overrides.append(f"datasets.train.gt_size={args.gt_size}")
    cfg = read_train_config(CONFIGS.get(args.config, args.config), overrides + args.set)
    fid = cfg.train.fidelity_opt
    if fid and fid.metric in ("dists", "dists_vgg16") and not metric_available_offline(
            fid.metric):
        print(f"note: {fid.metric} needs VGG-16 weights, absent here; using dists_vgg16_r "
              "(the same network with fixed random weights: the same cost)")
        fid.metric = "dists_vgg16_r"
    if args.no_compile:
        cfg.train.compile = False
    check_train_config(cfg)
    data = build_train_datasets(cfg)
    trainer = Trainer(cfg, args.device, datasets=data, progress=False)
    return cfg, trainer


class PlainLoop:
    """The reference: fp32, separate G and D steps, plain Adam (PyTorch defaults otherwise)."""

    def __init__(self, trainer):
        t = trainer.cfg.train
        self.g = copy.deepcopy(trainer.net_g).to(memory_format=torch.contiguous_format)
        self.d = copy.deepcopy(trainer.net_d)
        if self.d is not None:
            self.d.to(memory_format=torch.contiguous_format)
        self.objective = trainer.objective
        cls = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}
        self.opt_g = cls[t.optim_g.type](self.g.parameters(), lr=t.optim_g.lr,
                                         betas=tuple(t.optim_g.betas),
                                         weight_decay=t.optim_g.weight_decay)
        self.d_params = [p for p in self.d.parameters() if p.requires_grad] if self.d else []
        self.opt_d = cls[t.optim_d.type](self.d_params, lr=t.optim_d.lr,
                                         betas=tuple(t.optim_d.betas),
                                         weight_decay=t.optim_d.weight_decay) if self.d else None

    def step(self, lq, hr) -> dict:
        obj = self.objective
        sr = self.g(lq)
        fake = real = None
        if self.d is not None:
            for p in self.d_params:
                p.requires_grad_(False)
            fake = self.d(sr)
            if obj.gan_type == "ragan":
                real = self.d(hr).detach()
        loss, terms = obj.generator_terms(sr, hr, fake, real)
        self.opt_g.zero_grad()
        loss.backward()
        self.opt_g.step()
        if self.d is not None:
            for p in self.d_params:
                p.requires_grad_(True)
            d_loss, d_terms = obj.discriminator_terms(self.d(hr), self.d(sr.detach()))
            self.opt_d.zero_grad()
            d_loss.backward()
            self.opt_d.step()
            terms.update(d_terms)
        return terms


def timed(fn, n, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n * 1000


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="tiny", help="tiny | paper | a YAML path")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, help="batch size (default: the config's)")
    p.add_argument("--gt-size", type=int, help="HR crop (default: the config's)")
    p.add_argument("--set", action="append", default=[], metavar="key.path=value",
                   help="config override (repeatable)")
    p.add_argument("--no-compile", action="store_true", help="force train.compile=false")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations per side")
    p.add_argument("--iters", type=int, default=5, help="iterations per timed block")
    p.add_argument("--rounds", type=int, default=3, help="alternating timed blocks per side")
    p.add_argument("--json", metavar="PATH", help="also write the timings as JSON (for "
                   "`optiqa study --dry-run --step-time PATH`)")
    args = p.parse_args(argv)

    cfg, trainer = build(args)
    dev = trainer.device
    ref = PlainLoop(trainer)
    batch = trainer.train_set.batch(0, cfg.datasets.train.batch_size)
    lq, hr = batch["lq"].to(dev), batch["gt"].to(dev)

    # first iteration from identical weights: the losses must agree
    first_ref = {k: float(v) for k, v in ref.step(lq, hr).items()}
    t0 = time.perf_counter()  # the warm-up includes torch.compile's when enabled
    first_tr = {k: float(v) for k, v in trainer.train_step(1, batch).items()}
    it = [1]

    def trainer_step():
        it[0] += 1
        trainer.train_step(it[0], batch)

    for _ in range(args.warmup):
        trainer_step()
    warm_s = time.perf_counter() - t0
    for _ in range(args.warmup):
        ref.step(lq, hr)
    ref_ms, tr_ms, peak = [], [], {}
    for _ in range(args.rounds):
        for name, fn, out in (("plain", lambda: ref.step(lq, hr), ref_ms),
                              ("trainer", trainer_step, tr_ms)):
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            out.append(timed(fn, args.iters, dev))
            if dev.type == "cuda":
                peak[name] = max(peak.get(name, 0), torch.cuda.max_memory_allocated(dev))

    t = cfg.train
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}")
    print(f"config: {cfg.name}: G {cfg.network_g['type']}, D "
          f"{cfg.network_d['type'] if cfg.network_d else 'none'}, fidelity "
          f"{t.fidelity_opt.metric if t.fidelity_opt else 'none'}, gan "
          f"{t.gan_opt.type if t.gan_opt else 'none'}; batch {cfg.datasets.train.batch_size}, "
          f"HR {cfg.datasets.train.gt_size}")
    print(f"trainer flags: bf16={trainer.bf16} (config: {t.bf16}) channels_last="
          f"{t.channels_last} compile={t.compile} ema={t.ema_decay > 0}; warm-up "
          f"{args.warmup + 1} it in {warm_s:.1f} s")
    r, tr = statistics.median(ref_ms), statistics.median(tr_ms)
    print(f"{'loop':<10}{'ms/iter':>10}{'min':>10}{'max':>10}" +
          (f"{'peak GiB':>10}" if peak else ""))
    for label, vals, key in (("plain fp32", ref_ms, "plain"), ("trainer", tr_ms, "trainer")):
        print(f"{label:<10}{statistics.median(vals):>10.1f}{min(vals):>10.1f}{max(vals):>10.1f}"
              + (f"{peak[key] / 2**30:>10.2f}" if peak else ""))
    print(f"speed-up of the trainer's step over the plain loop: {r / tr:.2f}x")
    diffs = {k: abs(first_tr[k] - first_ref[k]) / max(abs(first_ref[k]), 1e-8)
             for k in first_ref if k in first_tr and k != "total"}
    print("first-iteration losses (plain / trainer, relative difference): " + "; ".join(
        f"{k} {first_ref[k]:.6g} / {first_tr[k]:.6g} ({diffs[k]:.1e})" for k in diffs))
    if args.json:
        import json

        Path(args.json).write_text(json.dumps({
            "device": name, "torch": torch.__version__, "config": cfg.name,
            "date": time.strftime("%Y-%m-%d"), "plain_ms_per_iter": r, "trainer_ms_per_iter": tr,
            "speedup": r / tr, "warmup_seconds": warm_s,
            "peak_gib": {k: v / 2**30 for k, v in peak.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
