"""The adversarial/fidelity gradient ratio and the relative adversarial weight
(``train.gan_opt.relative``, :mod:`optiqa.train.gradient_ratio`): norms with a hand-computed
answer, the achieved ratio checked through the training step's own objective, the record in the
run folder and the state, a resume that never measures again, a measurement that changes nothing
else, and clear errors naming the key."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from optiqa.core.atomic import load_torch
from optiqa.core.errors import ConfigError
from optiqa.core.runs import RunFolder
from optiqa.train import gradient_ratio as gr
from optiqa.train.config import load_train_config
from optiqa.train.objective import PerceptualObjective
from optiqa.train.run import run_training
from optiqa.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "train" / "tiny_cpu.yaml"
# adversarial from iteration 1, small crops, constant lr, no validation
SMALL = ["datasets.train.gt_size=32", "datasets.train.batch_size=2", "network_g.num_feat=8",
         "network_g.num_block=1", "network_d.ndf=8", "train.warmup_iter=0",
         "train.pixel_only_iter=0", "train.scheduler={type: constant}", "val=null",
         "datasets.val=null", "logger.print_freq=1", "train.bf16=false",
         "train.channels_last=false"]


class Theta(nn.Module):
    """A 'generator' whose output is its parameter (the input only fixes nothing)."""

    def __init__(self, init):
        super().__init__()
        self.theta = nn.Parameter(init.clone())

    def forward(self, lq):
        return self.theta


class Linear(nn.Module):
    """D(x) = <c, x> per image (image-level logits)."""

    def __init__(self, c):
        super().__init__()
        self.register_buffer("c", c)

    def forward(self, x):
        return (x.flatten(1) * self.c.flatten()).sum(1)


class MSE(nn.Module):
    def loss(self, x, ref):
        return (x - ref).pow(2).mean()


def test_norms_and_lambda_have_the_hand_computed_values():
    # theta = hr + 0.1 everywhere: grad of w_p |.|-mean is w_p/N, of w_f MSE 0.2 w_f/N per
    # element, so g_ref = (w_p + 0.2 w_f) / sqrt(N); hinge: L_adv = -<c, theta>, g_adv = ||c||
    torch.manual_seed(0)
    hr = torch.rand(1, 3, 4, 4) * 0.5
    n = hr.numel()
    c = torch.randn(1, 3, 4, 4)
    net_g, net_d = Theta(hr + 0.1), Linear(c)
    obj = PerceptualObjective(pixel_weight=0.5, fidelity_metric=MSE(), fidelity_weight=2.0,
                              gan_type="hinge", adversarial_weight=1.0)
    g_ref, g_adv = gr.gradient_norms(net_g, net_d, obj, hr, hr, net_g.parameters())
    assert g_ref == pytest.approx((0.5 + 0.2 * 2.0) / math.sqrt(n), rel=1e-5)
    assert g_adv == pytest.approx(float(c.norm()), rel=1e-5)
    assert net_g.theta.grad is None   # nothing accumulated for the optimizer
    lam = gr.adversarial_weight_for(0.25, True, g_ref, g_adv)
    assert lam == pytest.approx(0.25 * 0.9 / math.sqrt(n) / float(c.norm()), rel=1e-5)
    assert gr.adversarial_weight_for(0.25, False, g_ref, g_adv) == 0.25


def test_undefined_ratio_is_an_error_naming_the_key():
    for norms in ((0.0, 1.0), (1.0, 0.0), (1.0, float("nan"))):
        with pytest.raises(ConfigError, match=r"train\.gan_opt\.relative"):
            gr.adversarial_weight_for(0.5, True, *norms)
    assert gr.adversarial_weight_for(0.5, False, 0.0, 1.0) == 0.5   # absolute: no ratio needed


@pytest.mark.parametrize("overrides, key", [
    (["train.gan_opt.relative=true", "train.gan_opt.weight=0"], "train.gan_opt.weight"),
    (["train.gan_opt.relative=sometimes"], "train.gan_opt.relative"),
    (["train.gan_opt.relative=true", "train.pixel_opt=null", "train.fidelity_opt=null"],
     "train.gan_opt.relative"),
])
def test_bad_settings_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_train_config(TINY, SMALL + overrides)


def _train(run_dir, *overrides, total=2):
    return run_training(str(TINY), SMALL + [f"train.total_iter={total}", *overrides],
                        run_dir=run_dir, device="cpu", progress=False, console=False)


def test_relative_lambda_reaches_the_target_ratio_through_the_training_objective(tmp_path):
    """The ratio achieved by the objective the training step uses (generator_terms, another code
    path than the measurement) equals the target: with grad L_G(lambda) = a + lambda b,
    a = grad at lambda 0 and b = grad at lambda 1 minus a."""
    cfg = load_train_config(TINY, SMALL + ["train.gan_opt.relative=true",
                                           "train.gan_opt.weight=0.3"])
    trainer = Trainer(cfg, "cpu", progress=False)
    batch = trainer.train_set.batch(0, 2)     # iteration 1's batch, as the training loader
    lq, hr = batch["lq"], batch["gt"]
    d_buffers = {k: b.clone() for k, b in trainer.net_d.named_buffers()}

    def grads(lam):
        for k, b in trainer.net_d.named_buffers():   # the measurement's starting D
            b.copy_(d_buffers[k])
        trainer.objective.adversarial_weight = lam
        sr = trainer.net_g(lq)
        fake = trainer.net_d(sr)
        total, _ = trainer.objective.generator_terms(sr.float(), hr, fake)
        return torch.cat([g.flatten() for g in torch.autograd.grad(total, trainer.g_params)])

    a = grads(0.0)
    b = grads(1.0) - a
    for k, buf in trainer.net_d.named_buffers():
        buf.copy_(d_buffers[k])
    record = gr.start_record(trainer, 1, lq, hr)
    assert record.relative and record.weight == 0.3 and record.iteration == 1
    assert record.adversarial_weight * float(b.norm()) / float(a.norm()) == pytest.approx(
        0.3, rel=1e-4)
    assert record.ratio == pytest.approx(0.3, rel=1e-9)
    assert trainer.objective.adversarial_weight == record.adversarial_weight


def test_the_ratio_is_recorded_in_the_run_folder_and_state_and_scales_as_it_should(tmp_path):
    rel = _train(tmp_path / "rel", "train.gan_opt.relative=true", "train.gan_opt.weight=0.5")
    rel10 = _train(tmp_path / "rel10", "train.gan_opt.relative=true", "train.gan_opt.weight=0.5",
                   "train.fidelity_opt.weight=2.0", "train.pixel_opt=null")
    rel1 = _train(tmp_path / "rel1", "train.gan_opt.relative=true", "train.gan_opt.weight=0.5",
                  "train.fidelity_opt.weight=0.2", "train.pixel_opt=null")
    absolute = _train(tmp_path / "abs", "train.gan_opt.weight=0.004")
    recs = {}
    for name in ("rel", "rel10", "rel1", "abs"):
        run = RunFolder(tmp_path / name)
        recs[name] = run.gradient_ratio_record()
        state = load_torch(run.state_path(2))
        assert state["gradient_ratio"] == recs[name], name   # one value in both places
        assert "adversarial/fidelity gradient ratio" in run.log.read_text()
    assert rel and rel10 and rel1 and absolute
    # relative: the target ratio; lambda scales with the fidelity weight (g_ref does), exactly
    assert recs["rel"]["ratio"] == pytest.approx(0.5) and recs["rel"]["relative"]
    assert recs["rel10"]["adversarial_weight"] / recs["rel1"]["adversarial_weight"] == \
        pytest.approx(10.0, rel=1e-5)
    assert recs["rel10"]["adversarial_norm"] == pytest.approx(recs["rel1"]["adversarial_norm"])
    # absolute: lambda is the config's, the norms are the relative run's (same start, same batch)
    a, r = recs["abs"], recs["rel"]
    assert not a["relative"] and a["adversarial_weight"] == 0.004
    assert (a["reference_norm"], a["adversarial_norm"]) == (r["reference_norm"],
                                                           r["adversarial_norm"])
    assert a["ratio"] == pytest.approx(0.004 * a["adversarial_norm"] / a["reference_norm"])
    assert a["iteration"] == 1 and a["seed"] == 0 and a["batch_size"] == 2


def test_the_measurement_changes_nothing_else(tmp_path, monkeypatch):
    """An absolute run trains bit-identically whether the norms are measured or not (RNG forked,
    D's spectral-norm vectors restored)."""
    _train(tmp_path / "measured", total=3)
    monkeypatch.setattr(gr, "gradient_norms", lambda *a, **k: (1.0, 1.0))
    _train(tmp_path / "skipped", total=3)
    for net in ("g", "d"):
        x = load_torch(RunFolder(tmp_path / "measured").model_path(net, 3))["params"]
        y = load_torch(RunFolder(tmp_path / "skipped").model_path(net, 3))["params"]
        assert all(torch.equal(x[k], y[k]) for k in x), net


def test_a_resume_reuses_the_recorded_lambda_and_never_measures_again(tmp_path, monkeypatch):
    rel = ["train.gan_opt.relative=true", "train.gan_opt.weight=0.5",
           "logger.save_checkpoint_freq=2"]
    _train(tmp_path / "straight", *rel, total=4)
    _train(tmp_path / "resumed", *rel, total=2)

    def never(*a, **k):
        raise AssertionError("measured again on resume")
    monkeypatch.setattr(gr, "gradient_norms", never)
    run_training(str(TINY), SMALL + ["train.total_iter=4", *rel], run_dir=tmp_path / "resumed",
                 resume=True, device="cpu", progress=False, console=False)
    a, b = RunFolder(tmp_path / "straight"), RunFolder(tmp_path / "resumed")
    assert load_torch(b.state_path(4))["gradient_ratio"] == a.gradient_ratio_record()
    x, y = load_torch(a.model_path("g", 4))["params"], load_torch(b.model_path("g", 4))["params"]
    assert all(torch.equal(x[k], y[k]) for k in x)


def test_interrupted_before_its_first_checkpoint_the_run_reuses_its_record(tmp_path,
                                                                           monkeypatch):
    """The record of gradient_ratio.json is reused when it was measured at the same iteration
    under the same settings (its norms, here altered, decide lambda), else measured again."""
    rel = ["train.gan_opt.relative=true", "train.gan_opt.weight=0.5"]
    _train(tmp_path / "first", *rel, total=1)
    run = RunFolder(tmp_path / "first")
    record = run.gradient_ratio_record()
    record["adversarial_norm"] *= 2       # a mark: reused, lambda halves
    for p in run.state.iterdir():
        p.unlink()
    run.gradient_ratio.write_text(json.dumps(record))
    monkeypatch.setattr(gr, "gradient_norms", lambda *a, **k: pytest.fail("measured again"))
    run_training(str(TINY), SMALL + ["train.total_iter=1", *rel], run_dir=run.root,
                 resume=True, device="cpu", progress=False, console=False)
    again = run.gradient_ratio_record()
    assert again["adversarial_norm"] == record["adversarial_norm"]
    assert again["adversarial_weight"] == pytest.approx(
        0.5 * record["reference_norm"] / record["adversarial_norm"])
    # another setting that decides the norms (the fidelity weight): measured again
    assert gr._reusable(run, 1, "another settings key") is None


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_under_ddp_rank_0_measures_on_its_batch_and_every_rank_trains_with_it(tmp_path):
    """Two gloo processes of batch 2: rank 0's batch of iteration 1 is the single process's
    batch of 2, so the record equals that run's; the ranks end with identical weights."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    rel = ["train.gan_opt.relative=true", "train.gan_opt.weight=0.5", "train.total_iter=2",
           "logger.save_checkpoint_freq=2"]
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", "-m", "optiqa.cli", "train", str(TINY),
                          *SMALL, *rel, "--run-dir", str(tmp_path / "ddp"), "-q", "--device",
                          "cpu"], env=env, timeout=600, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    _train(tmp_path / "single", *rel)
    ddp, single = RunFolder(tmp_path / "ddp"), RunFolder(tmp_path / "single")
    log = ddp.log.read_text()
    assert "weights identical on all 2 ranks" in log and "different weights" not in log
    a, b = ddp.gradient_ratio_record(), single.gradient_ratio_record()
    for key in ("reference_norm", "adversarial_norm", "adversarial_weight"):
        assert a[key] == pytest.approx(b[key], rel=1e-5), key
    assert load_torch(ddp.state_path(2))["gradient_ratio"] == a
