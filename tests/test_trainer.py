"""The trainer: schedules, EMA, the NaN guard, one step of each stage, a short run's folder."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from optiqa.train.config import load_train_config
from optiqa.core.atomic import load_torch
from optiqa.core.runs import RunFolder
from optiqa.train.checkpoint import find_resume_point
from optiqa.train.ema import EMA
from optiqa.train.guard import NaNGuard, TrainingDiverged
from optiqa.train.optim import lr_at
from optiqa.train.run import run_training
from optiqa.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "train" / "tiny_cpu.yaml"
# a few iterations on small crops; validation on 2 images of 64x64
SMALL = ["datasets.train.gt_size=32", "datasets.train.batch_size=2",
         "datasets.val.dataroot_gt=builtin:samples/64", "datasets.val.max_images=2",
         "network_g.num_feat=8", "network_g.num_block=1", "network_d.ndf=8",
         "train.warmup_iter=0"]


def _trainer(*overrides) -> Trainer:
    return Trainer(load_train_config(TINY, SMALL + list(overrides)), "cpu", progress=False)


def _batch(trainer, i=0):
    return trainer.train_set.batch(i, trainer.cfg.datasets.train.batch_size)


def _params(net):
    return [p.detach().clone() for p in net.parameters()]


def test_lr_schedules():
    assert lr_at(1, 1e-3, 100) == 1e-3
    step = [lr_at(i, 1.0, 100, "step", [10, 20], 0.5) for i in (1, 10, 11, 20, 21)]
    assert step == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert lr_at(1, 1.0, 101, "cosine", eta_min=0.1) == pytest.approx(1.0)
    assert lr_at(51, 1.0, 101, "cosine", eta_min=0.1) == pytest.approx(0.55)
    assert lr_at(101, 1.0, 101, "cosine", eta_min=0.1) == pytest.approx(0.1)
    warm = [lr_at(i, 1.0, 100, "cosine", warmup_iter=4) for i in (1, 2, 4, 5)]
    assert warm[:3] == [0.25, 0.5, 1.0] and warm[3] == pytest.approx(1.0)


def test_ema_is_polyak_average():
    net = torch.nn.Linear(2, 1)
    ema = EMA(net, decay=0.9, warmup=False)
    before = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)
    assert torch.allclose(ema.model.weight, 0.9 * before + 0.1 * net.weight)
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_ema_warm_up_forgets_the_initial_weights():
    """A weight that jumps from 0 to 1 after initialisation: after t updates the EMA holds
    1 - prod_s d_s of it, with d_s = min(decay, (1+s)/(10+s)) (known closed form below)."""
    from optiqa.train.ema import warmed_up_decay

    assert [warmed_up_decay(0.999, t) for t in (0, 1, 8)] == [0.1, 2 / 11, 0.5]
    assert warmed_up_decay(0.999, 20_000) == 0.999 and warmed_up_decay(0.999, 5, False) == 0.999
    net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.zero_()
    warm, plain = EMA(net, 0.999), EMA(net, 0.999, warmup=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    for _ in range(300):
        warm.update(net)
        plain.update(net)
    # prod_{s<t} (1+s)/(10+s) = 9! t! / (t+9)!; the cap 0.999 is not reached before t = 9989
    left = math.factorial(9) * math.factorial(300) / math.factorial(309)
    assert float(warm.model.weight) == pytest.approx(1 - left, abs=1e-6)
    assert float(plain.model.weight) == pytest.approx(1 - 0.999 ** 300, rel=1e-4)  # 0.26
    assert warm.updates == 300 and warm.last_decay == pytest.approx(300 / 309)


def test_nan_guard_counts_and_stops():
    guard = NaNGuard(max_skips=2)
    guard.skip(1, "loss")
    guard.skip(2, "loss")
    with pytest.raises(TrainingDiverged, match="3 steps had a non-finite loss.*max_nan_skips = 2"):
        guard.skip(3, "loss")


def test_pixel_only_step_is_l1_only_and_leaves_d_alone():
    tr = _trainer("train.pixel_only_iter=5")
    d_before, g_before = _params(tr.net_d), _params(tr.net_g)
    logs = tr.train_step(1, _batch(tr))
    assert set(logs) == {"lr", "pixel", "g_total"}
    assert all(torch.equal(a, b) for a, b in zip(d_before, _params(tr.net_d)))
    assert not all(torch.equal(a, b) for a, b in zip(g_before, _params(tr.net_g)))


def test_perceptual_step_logs_every_term_and_trains_both():
    tr = _trainer("train.pixel_only_iter=0")
    d_before = _params(tr.net_d)
    logs = tr.train_step(1, _batch(tr))
    for key in ("pixel", "fidelity", "adversarial", "g_total", "d_loss", "d_real", "d_fake"):
        assert math.isfinite(float(logs[key])), key
    w = tr.cfg.train
    expected = (w.pixel_opt.weight * logs["pixel"] + w.fidelity_opt.weight * logs["fidelity"]
                + w.gan_opt.weight * logs["adversarial"])
    assert float(logs["g_total"]) == pytest.approx(float(expected), rel=1e-5)
    assert not all(torch.equal(a, b) for a, b in zip(d_before, _params(tr.net_d)))
    assert all(p.requires_grad for p in tr.d_params)  # restored after the frozen G step


def test_r1_ragan_and_frozen_backbone_discriminator():
    tr = _trainer("train.pixel_only_iter=0", "train.gan_opt.type=ragan", "train.gan_opt.r1_weight=1",
                  "train.gan_opt.d_steps=2",
                  "network_d={type: backbone, backbone: vgg16_r, head: patch, stage: 2, "
                  "pretrained: false, freeze_backbone: true, head_channels: 8}")
    frozen = _params(tr.net_d.backbone)
    assert tr.d_params and all(p.requires_grad for p in tr.d_params)
    assert len(tr.d_params) < len(list(tr.net_d.parameters()))  # optimiser skips the backbone
    logs = tr.train_step(1, _batch(tr))
    assert float(logs["r1"]) > 0 and math.isfinite(float(logs["d_total"]))
    assert all(torch.equal(a, b) for a, b in zip(frozen, _params(tr.net_d.backbone)))


def test_nan_generator_output_is_skipped_then_stops():
    tr = _trainer("train.pixel_only_iter=0", "train.max_nan_skips=1")
    g_before, ema_before = _params(tr.net_g), _params(tr.ema.model)
    real_forward = tr.g.forward
    tr.g.forward = lambda x: real_forward(x) * float("nan")
    logs = tr.train_step(1, _batch(tr))
    assert math.isnan(float(logs["g_total"])) and tr.guard.skips == 1
    assert all(torch.equal(a, b) for a, b in zip(g_before, _params(tr.net_g)))
    assert all(torch.equal(a, b) for a, b in zip(ema_before, _params(tr.ema.model)))
    with pytest.raises(TrainingDiverged, match="training stopped at iteration 2"):
        tr.train_step(2, _batch(tr, 1))


def test_bf16_and_channels_last_step_matches_fp32():
    losses = {}
    for bf16 in (False, True):
        tr = _trainer("train.pixel_only_iter=0", f"train.bf16={bf16}",
                      f"train.channels_last={bf16}")
        assert tr.bf16 is bf16
        losses[bf16] = {k: float(v) for k, v in tr.train_step(1, _batch(tr)).items()}
    for key in ("pixel", "fidelity", "adversarial"):
        assert losses[True][key] == pytest.approx(losses[False][key], rel=0.03, abs=2e-3), key


def test_short_run_writes_the_run_folder(tmp_path):
    summary = run_training(TINY, SMALL + [
        "train.total_iter=6", "train.pixel_only_iter=2", "logger.print_freq=2",
        "logger.save_checkpoint_freq=2", "logger.keep_checkpoints=2", "val.val_freq=3"],
        run_dir=tmp_path / "run", progress=False, console=False)
    run = RunFolder(tmp_path / "run")
    assert summary["iteration"] == 6 and set(summary["val"]) == {"psnr_y", "ssim_y"}
    cfg = load_train_config(run.config_path)  # the resolved config loads back
    assert cfg.train.total_iter == 6 and cfg.network_g["num_feat"] == 8
    log = run.log.read_text()
    for text in ("iter 2/6 [pixel_only]", "iter 6/6 [perceptual]", "fidelity", "adversarial",
                 "d_real", "d_fake", "val iter 3 (EMA of G, decay 0.25 after 3 updates (warm-up "
                 "min(0.99, (1+t)/(10+t))); border 4): psnr_y", "saved checkpoint 6"):
        assert text in log, text
    assert run.state_iterations() == [6, 4]  # keep_checkpoints=2
    g = load_torch(run.model_path("g", 6))
    assert {"params", "params_ema"} <= set(g) and g["network_g"]["scale"] == 4
    assert "params" in load_torch(run.model_path("d", 6))
    state = find_resume_point(run).state
    assert set(state["rng"][0]) == {"python", "numpy", "torch", "cuda"}
    assert state["sampler"]["next_iteration"] == 7 and state["nan_skips"] == 0
    assert {p.name for p in (run.samples / "astronaut").iterdir()} == {"gt.png", "3.png",
                                                                       "6.png"}
    # the run folder is what `optiqa evaluate` reads
    from optiqa.restore.scoring import evaluate_sets
    from optiqa.restore.generator import load_generator

    loaded = load_generator(run.root)
    assert loaded.iteration == 6 and loaded.weights_key == "params_ema"
    res = evaluate_sets(loaded, {"val": "builtin:samples/64"}, ["psnr_y"], progress=False)
    assert res.sets[0].mean("psnr_y") > 15
    # --resume of a finished run does nothing and writes nothing
    before = {p: p.read_bytes() for p in run.root.rglob("*") if p.is_file()}
    again = run_training(run.config_path, run_dir=run.root, resume=True, progress=False,
                         console=False)
    assert again["iteration"] == 6 and again["complete"]
    assert {p: p.read_bytes() for p in run.root.rglob("*") if p.is_file()} == before


def test_pixel_only_run_and_pretrained_init(tmp_path):
    tr = _trainer("train.pixel_only_iter=0", "network_d=null", "train.gan_opt=null")
    torch.save({"params": tr.net_g.state_dict()}, tmp_path / "g.pth")
    tr2 = _trainer("network_d=null", "train.gan_opt=null", "train.total_iter=3",
                   "train.pixel_only_iter=3", f"path.pretrain_network_g={tmp_path / 'g.pth'}",
                   "network_g.num_feat=8")
    assert tr2.net_d is None and tr2.objective is None
    assert all(torch.equal(a, b) for a, b in zip(_params(tr.net_g), _params(tr2.net_g)))
    assert all(torch.equal(a, b) for a, b in zip(_params(tr.net_g), _params(tr2.ema.model)))
    tr2.fit()
    assert tr2.iteration == 3


def test_resolved_config_is_complete(tmp_path):
    run_training(TINY, SMALL + ["train.total_iter=1", "train.pixel_only_iter=0", "val=null",
                               "datasets.val=null"],
                 run_dir=tmp_path / "r", progress=False, console=False)
    saved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert saved["train"]["optim_g"]["eps"] == 1e-8  # defaults are written out
    assert saved["logger"]["keep_checkpoints"] == 2 and saved["val"] is None
