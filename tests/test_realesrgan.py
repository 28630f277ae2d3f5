"""Real-ESRGAN's degradation: parameter statistics against the published ranges, and rendering.

The statistics are checked on 2,000 draws (parameters only, nothing rendered) from a fixed seed,
so the test is deterministic; each check is a goodness-of-fit test against the distribution the
official options and code define (train_realesrgan_x4plus.yml, RealESRGANDataset,
RealESRGANModel.feed_data), with a negative control showing the tests can reject.
"""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from optiqa.core.errors import ConfigError
from optiqa.data.realesrgan import (KERNEL_SIZES, RESIZE_MODES, RealESRGANDegradation,
                                    StageDraw, add_noise, jpeg_roundtrip, usm_sharpen)
from optiqa.data.task_datasets import SRTrainDataset

N = 2000
P_MIN = 1e-3  # reject a fit below this p-value (the draws are fixed: no flakiness)
FAMILIES = ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso",
            "plateau_aniso"]
FAMILY_PROB = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]


@pytest.fixture(scope="module")
def draws():
    d = RealESRGANDegradation()
    g = torch.Generator().manual_seed(2021)
    return [d.draw(g) for _ in range(N)]


def _uniform_p(values, lo, hi) -> float:
    values = np.asarray(values, dtype=float)
    assert values.min() >= lo and values.max() <= hi, (values.min(), values.max(), lo, hi)
    return stats.kstest(values, "uniform", args=(lo, hi - lo)).pvalue


def _binom_p(flags, p) -> float:
    return stats.binomtest(int(sum(flags)), len(flags), p).pvalue


def _chi2_p(observed_labels, labels, probs) -> float:
    obs = np.array([sum(1 for x in observed_labels if x == lab) for lab in labels], float)
    exp = np.array(probs, float) / sum(probs) * len(observed_labels)
    return stats.chisquare(obs, exp).pvalue


def test_draw_statistics_match_the_published_ranges(draws):
    report = {}
    k1 = [d.first.blur for d in draws]
    k2 = [d.second.blur for d in draws if d.second.blur is not None]
    final = [d.final_sinc for d in draws]
    for name, ks in (("kernel1", k1), ("kernel2", k2)):
        report[f"{name} size (uniform 7..21)"] = _chi2_p([k.size for k in ks], KERNEL_SIZES,
                                                         [1] * 8)
        report[f"{name} sinc share (0.1)"] = _binom_p([k.family == "sinc" for k in ks], 0.1)
        blur = [k for k in ks if k.family != "sinc"]
        report[f"{name} family (kernel_prob)"] = _chi2_p([k.family for k in blur], FAMILIES,
                                                         FAMILY_PROB)
        sinc = [k for k in ks if k.family == "sinc"]
        small = [k.cutoff for k in sinc if k.size < 13]
        large = [k.cutoff for k in sinc if k.size >= 13]
        report[f"{name} sinc cutoff k<13 U(pi/3, pi)"] = _uniform_p(small, math.pi / 3, math.pi)
        report[f"{name} sinc cutoff k>=13 U(pi/5, pi)"] = _uniform_p(large, math.pi / 5, math.pi)
    for name, ks, hi in (("kernel1", k1, 3.0), ("kernel2", k2, 1.5)):
        blur = [k for k in ks if k.family != "sinc"]
        report[f"{name} sigma_x U(0.2, {hi})"] = _uniform_p([k.sigma_x for k in blur], 0.2, hi)
        aniso = [k for k in blur if k.family.endswith("aniso")]
        report[f"{name} sigma_y aniso U(0.2, {hi})"] = _uniform_p([k.sigma_y for k in aniso],
                                                                  0.2, hi)
        report[f"{name} theta U(-pi, pi)"] = _uniform_p([k.theta for k in aniso], -math.pi,
                                                        math.pi)
        assert all(k.sigma_y == k.sigma_x and k.theta == 0 for k in blur
                   if not k.family.endswith("aniso"))
        gen = [k.beta for k in blur if k.family.startswith("generalized")]
        report[f"{name} betag: half U(0.5, 1), half U(1, 4)"] = min(
            _binom_p([b < 1 for b in gen], 0.5), _uniform_p([b for b in gen if b < 1], 0.5, 1),
            _uniform_p([b for b in gen if b >= 1], 1, 4))
        plat = [k.beta for k in blur if k.family.startswith("plateau")]
        # betap_range [1, 2]: U(1, 1) = 1 half of the time, U(1, 2) otherwise
        report[f"{name} betap: half 1, half U(1, 2)"] = _uniform_p(
            [b for b in plat if b > 1], 1, 2)
        assert abs(sum(b == 1 for b in plat) / len(plat) - 0.5) < 0.12
    report["final sinc share (0.8)"] = _binom_p([k.family == "sinc" for k in final], 0.8)
    fs = [k for k in final if k.family == "sinc"]
    report["final sinc size (uniform 7..21)"] = _chi2_p([k.size for k in fs], KERNEL_SIZES,
                                                        [1] * 8)
    report["final sinc cutoff U(pi/3, pi)"] = _uniform_p([k.cutoff for k in fs], math.pi / 3,
                                                         math.pi)
    report["second blur share (0.8)"] = _binom_p([d.second.blur is not None for d in draws], 0.8)
    report["final order sinc-first (0.5)"] = _binom_p([d.sinc_before_jpeg for d in draws], 0.5)

    for name, st, probs, (lo, hi), sig, poi in (
            ("stage1", [d.first for d in draws], [0.2, 0.7, 0.1], (0.15, 1.5), 30, 3.0),
            ("stage2", [d.second for d in draws], [0.3, 0.4, 0.3], (0.3, 1.2), 25, 2.5)):
        report[f"{name} resize up/down/keep {probs}"] = _chi2_p([s.resize for s in st],
                                                                ["up", "down", "keep"], probs)
        report[f"{name} resize up U(1, {hi})"] = _uniform_p(
            [s.resize_factor for s in st if s.resize == "up"], 1, hi)
        report[f"{name} resize down U({lo}, 1)"] = _uniform_p(
            [s.resize_factor for s in st if s.resize == "down"], lo, 1)
        assert all(s.resize_factor == 1 for s in st if s.resize == "keep")
        report[f"{name} resize mode (uniform)"] = _chi2_p([s.resize_mode for s in st],
                                                          RESIZE_MODES, [1, 1, 1])
        report[f"{name} gaussian noise share (0.5)"] = _binom_p([s.noise == "gaussian"
                                                                 for s in st], 0.5)
        report[f"{name} gaussian sigma U(1, {sig})"] = _uniform_p(
            [s.noise_level for s in st if s.noise == "gaussian"], 1, sig)
        report[f"{name} poisson scale U(0.05, {poi})"] = _uniform_p(
            [s.noise_level for s in st if s.noise == "poisson"], 0.05, poi)
        report[f"{name} grey noise share (0.4)"] = _binom_p([s.gray_noise for s in st], 0.4)
    for name, q in (("stage1 JPEG quality U(30, 95)", [d.first.jpeg_quality for d in draws]),
                    ("final JPEG quality U(30, 95)", [d.final_jpeg_quality for d in draws])):
        report[name] = _uniform_p(q, 30, 95)
        used = np.round(q)  # the integer quality given to libjpeg
        labels = list(range(30, 96))
        expected = [0.5 if v in (30, 95) else 1.0 for v in labels]  # the ends get half a bin
        report[name.replace("U(30, 95)", "integers 30..95")] = _chi2_p(list(used), labels,
                                                                       expected)
    width = max(map(len, report))
    print("\nReal-ESRGAN draws vs published ranges, p-values over", N, "draws (seed 2021):")
    for k, v in report.items():
        print(f"  {k:{width}s}  p = {v:.3f}")
    bad = {k: v for k, v in report.items() if not v > P_MIN}
    assert not bad, bad


def test_the_statistics_tests_can_reject(draws):
    # negative control: the same tests reject ranges that are close to, but not, the published
    sig = [d.first.blur.sigma_x for d in draws if d.first.blur.family != "sinc"]
    assert stats.kstest(sig, "uniform", args=(0.2, 2.6)).pvalue < 1e-6
    q = [d.first.jpeg_quality for d in draws]
    assert stats.kstest(q, "uniform", args=(30, 60)).pvalue < 1e-6
    assert _chi2_p([d.first.resize for d in draws], ["up", "down", "keep"],
                   [0.3, 0.6, 0.1]) < 1e-6


def test_render_is_seeded_8bit_and_sized():
    d = RealESRGANDegradation()
    gt = torch.rand(1, 3, 64, 64)
    gt = torch.nn.functional.avg_pool2d(gt, 5, 1, 2)  # some structure, not white noise
    outs = []
    for seed in range(6):  # covers up/down/keep, both noises, both final orders
        lq, params = d.degrade_one(gt, torch.Generator().manual_seed(seed))
        assert lq.shape == (1, 3, 16, 16)
        assert torch.equal(lq, torch.floor(lq * 255 + 0.5) / 255) and 0 <= lq.min() <= lq.max() <= 1
        again, _ = d.degrade_one(gt, torch.Generator().manual_seed(seed))
        assert torch.equal(lq, again)
        # the first-order JPEG quality is a draw from U(jpeg_range) = U(30, 95), not a default
        assert 30 <= params["first"]["jpeg_quality"] <= 95
        outs.append(lq)
    assert len({o.numpy().tobytes() for o in outs}) == len(outs)
    assert RealESRGANDegradation(scale=2).degrade_one(gt, torch.Generator().manual_seed(0))[
        0].shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="multiple"):
        d(torch.rand(1, 3, 30, 30))
    ds = SRTrainDataset("builtin:samples/96", scale=4, gt_size=64, seed=0,
                        degradation="realsr_x4", use_rot=False)
    assert ds[0]["lq"].shape == (3, 16, 16) and ds[0]["gt"].shape == (3, 64, 64)


def test_jpeg_roundtrip_is_pillow_jpeg():
    from optiqa.data.distortions import jpeg

    x = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 40, 48), 3, 1, 1)
    x = torch.floor(x * 255 + 0.5) / 255
    assert torch.equal(jpeg_roundtrip(x, 47.6), jpeg(x, 48, None))
    buf = io.BytesIO()
    arr = (x[0] * 255).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(arr).save(buf, format="JPEG", quality=31)
    dec = torch.from_numpy(np.asarray(Image.open(buf)).copy()).permute(2, 0, 1).float() / 255
    assert torch.equal(jpeg_roundtrip(x[:1], 30.9)[0], dec)


def test_usm_sharpen_matches_the_2d_filter_and_keeps_flat_images():
    flat = torch.full((1, 3, 60, 60), 0.3)
    assert torch.allclose(usm_sharpen(flat), flat, atol=1e-6)
    x = torch.zeros(1, 3, 60, 60)
    x[..., :, 30:] = 0.8
    from optiqa.ops.filters import gaussian_kernel1d

    k1 = gaussian_kernel1d(51, 8.0, dtype=torch.float64)
    k2 = (k1[:, None] * k1[None, :]).float()
    pad = lambda t: torch.nn.functional.pad(t, (25, 25, 25, 25), mode="reflect")  # noqa: E731
    blur = lambda t: torch.nn.functional.conv2d(pad(t), k2.expand(3, 1, 51, 51), groups=3)  # noqa
    residual = x - blur(x)
    soft = blur((residual.abs() * 255 > 10).float())
    ref = soft * (x + 0.5 * residual).clamp(0, 1) + (1 - soft) * x
    out = usm_sharpen(x)
    assert torch.allclose(out, ref, atol=1e-5)
    assert float(out[..., 30:].max()) > 0.8  # overshoot on the bright side of the edge


def _stage(noise, level, gray, seed=1):
    return StageDraw(None, "keep", 1.0, "area", noise, level, gray, seed, None)


def test_noise_has_the_stated_distribution():
    x = torch.full((1, 3, 128, 128), 0.5)
    n = add_noise(x, _stage("gaussian", 20.0, False)) - x
    assert float(n.std()) == pytest.approx(20 / 255, rel=0.03) and abs(float(n.mean())) < 1e-3
    grey = add_noise(x, _stage("gaussian", 20.0, True)) - x
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    # constant image: one distinct value, 2^0 = 1 level: noise = (Poisson(v) - v) * scale
    p = add_noise(x, _stage("poisson", 0.1, False)) - x
    assert abs(float(p.mean())) < 2e-3
    assert float(p.var()) == pytest.approx(0.5 * 0.1 ** 2, rel=0.05)
    assert not torch.equal(p, add_noise(x, _stage("poisson", 0.1, False, seed=2)) - x)


def test_options_are_checked():
    for bad in ({"kernel_list": ["iso", "box"], "kernel_prob": [0.5, 0.5]},
                {"kernel_prob": [1.0]}, {"jpeg_range": [30, 120]}, {"resize_range2": [1.2]},
                {"resize_prob": [0.5, 0.5]}):
        with pytest.raises(ConfigError, match="realesrgan"):
            RealESRGANDegradation(**bad)


@pytest.mark.gpu
def test_gpu_render_draws_the_same_parameters():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    d = RealESRGANDegradation()
    gt = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 64, 64), 5, 1, 2)
    cpu, p_cpu = d.degrade_one(gt, torch.Generator().manual_seed(4))
    gpu, p_gpu = d.degrade_one(gt.cuda(), torch.Generator().manual_seed(4))
    assert p_cpu == p_gpu and gpu.is_cuda and gpu.shape == cpu.shape
    # same parameters, different noise realisations: close on average, not identical
    assert float((gpu.cpu() - cpu).abs().mean()) < 0.1


def test_degradation_in_the_training_step_on_the_device():
    """``datasets.train.degrade_on_device``: items carry the crop and a seed, the step degrades
    (on the CPU here; on the GPU in a CUDA run), reproducibly from (seed, iteration)."""
    from pathlib import Path

    from optiqa.train.config import load_train_config
    from optiqa.train.trainer import Trainer

    ds = SRTrainDataset("builtin:samples/96", scale=4, gt_size=32, seed=0,
                        degradation="realsr_x4", degrade_on_device=True)
    batch = ds.batch(3, 2)
    assert "lq" not in batch and batch["gt"].shape == (2, 3, 32, 32)
    lq = ds.degrade_batch(batch["gt"], batch["seed"])
    assert lq.shape == (2, 3, 8, 8)
    again = ds.batch(3, 2)
    assert torch.equal(again["seed"], batch["seed"])
    assert torch.equal(ds.degrade_batch(again["gt"], again["seed"]), lq)
    tiny = Path(__file__).resolve().parents[1] / "configs" / "train" / "tiny_cpu.yaml"
    cfg = load_train_config(tiny, [
        "datasets.train.degradation=realsr_x4", "datasets.train.degrade_on_device=true",
        "datasets.train.gt_size=32", "datasets.train.batch_size=2", "datasets.val=null",
        "val=null", "network_g.num_feat=8", "network_g.num_block=1", "network_d=null",
        "train.gan_opt=null", "train.fidelity_opt=null", "train.pixel_only_iter=0"])
    trainer = Trainer(cfg, "cpu", progress=False)
    logs = trainer.train_step(1, trainer.train_set.batch(0, 2))
    assert torch.isfinite(logs["g_total"])
