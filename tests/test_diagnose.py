"""Diagnostics of metrics as losses, on constructed cases whose answer is known."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

import optiqa
from optiqa.core.errors import ConfigError, InputError
from optiqa.data.samples import load_sample
from optiqa.diagnose import local, outputs, recovery, spectrum
from optiqa.diagnose.recovery import RecoveryOptions, run_recovery
from optiqa.metrics import FRMetric, MetricInfo
from optiqa.ops.color import rgb_to_gray


def mid_range(name: str, size: int) -> torch.Tensor:
    """A sample photo squeezed into [0.2, 0.8], so that small distortions are never clipped."""
    return 0.2 + 0.6 * load_sample(name, size)[None]


def chroma(img: torch.Tensor) -> torch.Tensor:
    """The part of each pixel orthogonal to the grey axis (R = G = B)."""
    return img - img.mean(1, keepdim=True)


def rms(t: torch.Tensor) -> float:
    return float(t.pow(2).mean().sqrt())


# -- recovery ------------------------------------------------------------------------------
@pytest.mark.parametrize("ref_kind", ["photo", "random"])
def test_mse_recovers_any_reference_from_any_start(ref_kind):
    g = torch.Generator().manual_seed(3)
    ref = load_sample("chelsea", 48) if ref_kind == "photo" else torch.rand(3, 40, 40, generator=g)
    report = run_recovery(["mse"], {"r": ref}, RecoveryOptions(steps=150))
    assert [r["start"] for r in report.rows] == list(recovery.START_KINDS)
    for row in report.rows:
        assert row["psnr"] > 40 and row["psnr_y"] > 40, row
        assert row["verdict"] == "recovered" and row["progress"] == pytest.approx(1, abs=1e-3)
    run = report.run("r", "mse")
    assert run.losses.shape == (151, 4)
    assert (run.losses[-1] < run.losses[0]).all()
    # what the table reports is the metric of the returned images
    assert report.rows[0]["metric_result"] == pytest.approx(
        float(F.mse_loss(run.result[0], ref)), rel=1e-4, abs=1e-9)


def test_colour_blind_metric_cannot_recover_chroma():
    """SSIM compares MATLAB rgb2gray images: from a grey start it recovers the luminance and never
    the colour; MSE from the same start recovers both."""
    ref = load_sample("astronaut", 48)[None]
    options = RecoveryOptions(starts=("constant",), steps=150)
    report = run_recovery(["ssim", "mse"], {"a": ref}, options)
    ssim_result = report.run("a", "ssim").result
    mse_result = report.run("a", "mse").result
    assert rms(chroma(ref)) > 0.08  # a colourful reference
    assert rms(chroma(ssim_result)) < 0.1 * rms(chroma(ref))  # still (nearly) grey
    assert rms(chroma(ssim_result) - chroma(ref)) > 0.9 * rms(chroma(ref))
    assert rms(rgb_to_gray(ssim_result) - rgb_to_gray(ref)) < 0.03  # luminance recovered
    assert rms(chroma(mse_result) - chroma(ref)) < 0.01  # MSE does recover the colour
    row = next(r for r in report.rows if r["metric"] == "ssim")
    assert row["metric_result"] > 0.99 and row["psnr"] < 30 and row["verdict"] == "exposed"


def test_sigmoid_bounds_keep_pixels_inside_and_recover_less_than_projection():
    """The reason for projecting: with the same budget, Adam on logits stalls near 0 and 1."""
    ref = load_sample("astronaut", 40)
    options = dict(starts=("noise", "constant"), steps=60)
    sig = run_recovery(["mse"], {"a": ref}, RecoveryOptions(bounds="sigmoid", **options))
    proj = run_recovery(["mse"], {"a": ref}, RecoveryOptions(**options))
    result = sig.run("a", "mse").result
    assert 0 < float(result.min()) and float(result.max()) < 1
    assert (sig.run("a", "mse").losses[-1] < sig.run("a", "mse").losses[0]).all()
    for s_row, p_row in zip(sig.rows, proj.rows):
        assert p_row["psnr"] > s_row["psnr"] + 10
    with pytest.raises(ConfigError, match="bounds"):
        RecoveryOptions(bounds="tanh")


def test_recovery_starts_are_what_they_say():
    ref = load_sample("coffee", 32)[None]
    o = RecoveryOptions(seed=5, constant=0.25)
    starts = recovery.initial_images(ref, o)
    assert starts.shape == (4, 3, 32, 32)
    noise, constant, blur, jpeg = starts
    assert noise.std() > 0.25 and abs(float(noise.mean()) - 0.5) < 0.05
    torch.testing.assert_close(noise, recovery.initial_images(ref, o)[0])  # seeded
    assert bool((constant == 0.25).all())
    # a blur keeps the mean and removes high frequencies; JPEG stays close to the reference
    assert abs(float(blur.mean() - ref.mean())) < 0.02
    assert rms(blur[:, 1:] - blur[:, :-1]) < 0.5 * rms(ref[0, :, 1:] - ref[0, :, :-1])
    assert 0 < rms(jpeg - ref[0]) < 0.1


def test_recovery_options_and_inputs_are_checked():
    with pytest.raises(ConfigError, match="unknown initial image"):
        RecoveryOptions(starts=("noise", "grey"))
    with pytest.raises(ConfigError, match="steps"):
        RecoveryOptions(steps=-1)
    with pytest.raises(optiqa.core.errors.UnknownNameError, match="did you mean"):
        run_recovery(["msee"], {"a": torch.rand(3, 16, 16)}, RecoveryOptions(steps=1))
    with pytest.raises(InputError, match="too small for mad"):
        run_recovery(["mad"], {"a": torch.rand(3, 16, 16)}, RecoveryOptions(steps=1))


def test_verdicts():
    base = {"psnr": 20.0, "loss_result": 0.5, "loss_anchor": 0.1, "prefers_result": False}
    assert recovery.verdict({**base, "psnr": 36.0}) == "recovered"
    assert recovery.verdict({**base, "loss_result": 0.1}) == "exposed"
    assert recovery.verdict({**base, "prefers_result": True}) == "exposed"
    assert recovery.verdict(base) == "stuck"


def test_anchor_is_white_noise_at_35_db():
    ref = mid_range("coffee", 64)
    anchor = recovery.anchor_image(ref)
    psnr = float(optiqa.create_metric("psnr")(anchor, ref))
    assert psnr == pytest.approx(35.0, abs=0.1)
    torch.testing.assert_close(anchor, recovery.anchor_image(ref))


def test_classical_metrics_are_the_fourteen_without_networks():
    names = recovery.classical_metrics()
    assert len(names) == 14 and "mse" in names and "mad" in names
    assert not any(n.startswith(("lpips", "dists")) for n in names)


def test_judges_score_the_starts_once_with_the_same_numbers():
    """run_recovery scores the starts with each judge once per reference (they are the same for
    every metric): every row holds exactly what judging them directly gives."""
    ref = load_sample("rocket", 40)
    options = RecoveryOptions(starts=("noise", "blur"), steps=2)
    report = run_recovery(["l1", "ssim"], {"rocket": ref}, options)
    batch = ref[None].float()
    starts = recovery.initial_images(batch, options)
    for col in report.evaluators:
        m = optiqa.create_metric(col)
        with torch.no_grad():
            direct_starts = m(starts, batch.expand_as(starts)).tolist()
        for run in report.runs:
            with torch.no_grad():
                direct_result = m(run.result, batch.expand_as(run.result)).tolist()
            rows = [r for r in report.rows if r["metric"] == run.metric]
            assert [r[f"{col}_start"] for r in rows] == direct_starts
            assert [r[col] for r in rows] == direct_result


def test_recovery_outputs(tmp_path):
    ref = load_sample("rocket", 40)
    report = run_recovery(["l1", "ssim"], {"rocket": ref}, RecoveryOptions(steps=3))
    written = outputs.write_recovery(report, tmp_path, palette_colours=64)
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert {"recovery.csv", "recovery.txt", "recovery.json", "recovery_rocket.png",
            "images/rocket/reference.png", "images/rocket/start_noise.png",
            "images/rocket/ssim_jpeg.png"} <= names
    data = json.loads((tmp_path / "recovery.json").read_text())
    assert len(data["rows"]) == 8 and data["evaluators"][-1] in ("dists", "dists_vgg16_r")
    assert len(data["losses"]["rocket/ssim"]) == 4
    text = (tmp_path / "recovery.txt").read_text()
    assert "PSNR-Y" in text and "verdict" in text and "CPU" in text
    from PIL import Image

    with Image.open(tmp_path / "recovery_rocket.png") as im:
        assert im.mode == "P" and im.size[0] > 300


# -- gradient spectrum ---------------------------------------------------------------------
def test_gradient_spectrum_of_mse_at_white_noise_is_flat():
    ref = mid_range("astronaut", 128)
    g = torch.Generator().manual_seed(0)
    x = ref + 0.03 * torch.randn(ref.shape, generator=g)
    assert 0 <= float(x.min()) and float(x.max()) <= 1  # no clipping: the error is white
    s = spectrum.gradient_spectrum("mse", x, ref)
    rings = s.relative_power[4:]  # rings of >= 25 coefficients x 3 channels
    assert rings.min() > 0.6 and rings.max() < 1.5
    assert abs(rings.mean() - 1) < 0.05
    assert abs(s.band_shares - s.white_shares).max() < 0.02
    assert s.band_shares.sum() == pytest.approx(1.0)
    # MSE's gradient is 2 (x - ref) / n
    assert s.gradient_norm == pytest.approx(float(2 * (x - ref).norm() / x.numel()), rel=1e-4)


class BlurredMSE(FRMetric):
    """MSE between Gaussian-blurred images: its gradient is low-pass (a known non-flat case)."""

    def compute(self, x, ref):
        from optiqa.data.distortions import gaussian_blur

        return (gaussian_blur(x, 2.0, None) - gaussian_blur(ref, 2.0, None)).pow(2).flatten(1).mean(1)


def test_gradient_spectrum_of_a_low_pass_loss_is_low_pass():
    info = MetricInfo("blurred_mse", True, True, (0.0, 1.0), "test", "test")
    ref = mid_range("coffee", 64)
    x = ref + 0.03 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    s = spectrum.gradient_spectrum(BlurredMSE(info), x, ref)
    assert s.band_shares[0] < 0.01 < s.white_shares[0]  # nothing at >= 0.25 cycles/pixel
    assert s.band_shares[-2:].sum() > 0.5


def test_band_areas_are_the_white_shares():
    areas = spectrum.band_areas(256, 256)
    assert areas.sum() == pytest.approx(1.0)
    assert float(areas[0]) == pytest.approx(1 - math.pi / 16, abs=0.01)
    assert float(areas[1]) == pytest.approx(3 * math.pi / 64, abs=0.01)


# -- local behaviour -----------------------------------------------------------------------
def test_line_scans_of_mse_and_l1_have_the_known_shapes():
    ref = mid_range("chelsea", 48)
    restored = ref + 0.05 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(2))
    for name, k, flat in (("mse", 2.0, 1 / 16), ("l1", 1.0, 1 / 4)):
        scan = local.scan_lines(name, ref, restored, n_random=2)
        assert scan.reference_is_minimum and scan.restored_argmin == 0
        assert scan.restored_exponent == pytest.approx(k, abs=0.02)
        assert all(e == pytest.approx(k, abs=0.05) for e in scan.random_exponent)
        assert scan.flatness == pytest.approx(flat, rel=0.02)
        assert float(scan.restored_rise[scan.t == 1.0]) == pytest.approx(
            float(optiqa.create_metric(name).loss(restored, ref)), rel=1e-4)


def test_line_scan_finds_a_minimum_away_from_the_reference():
    """VIF prefers some contrast enhancement to the reference itself: along the line towards a
    contrast-reduced image, its minimum lies on the far side of the reference (t < 0)."""
    ref = mid_range("astronaut", 64)
    lower_contrast = ref.mean() + 0.7 * (ref - ref.mean())
    scan = local.scan_lines("vif", ref, lower_contrast, n_random=0)
    assert scan.restored_argmin < 0 and not scan.reference_is_minimum


# -- plenoptic: MAD competition and eigendistortions -----------------------------------------
class RedMSE(FRMetric):
    """MSE of the red channel only."""

    def compute(self, x, ref):
        return (x[:, :1] - ref[:, :1]).pow(2).flatten(1).mean(1)


def test_mad_competition_against_a_known_answer():
    """With MSE held at s^2, the red-channel MSE can reach 3 s^2 (all the error in red) and 0
    (none in red): the four MAD images must get there while MSE stays put."""
    pytest.importorskip("plenoptic")
    from optiqa.diagnose.synthesis import MADOptions, mad_competition

    red = RedMSE(MetricInfo("red_mse", True, True, (0.0, 1.0), "test", "test"))
    ref = mid_range("coffee", 32)
    r = mad_competition(red, "mse", ref, MADOptions(noise_std=0.05, steps=300, lr=0.005))
    mse0 = r.initial_values["mse"]
    assert mse0 == pytest.approx(0.0025, rel=0.1) and r.initial_mse == pytest.approx(mse0)
    got = {img.name: img for img in r.images}
    assert got["max_red_mse"].values["red_mse"] > 0.9 * 3 * mse0
    assert got["min_red_mse"].values["red_mse"] < 0.1 * mse0
    for name in ("max_red_mse", "min_red_mse"):
        assert got[name].values["mse"] == pytest.approx(mse0, rel=0.02)
        assert got[name].fixed_drift < 0.02
    # the other way round: red MSE held, MSE pushed (at least it moves in the right direction)
    assert got["max_mse"].values["mse"] > mse0 > got["min_mse"].values["mse"]


def test_metric_distance_is_plenoptics_order_and_zero_at_identity():
    from optiqa.diagnose.synthesis import MetricDistance

    vif = optiqa.create_metric("vif")
    d = MetricDistance(vif)
    ref = load_sample("astronaut", 48)[None]
    x = (ref * 0.8 + 0.1)
    assert float(d(ref, ref)) == 0.0
    expected = float(vif.loss(x, ref) - vif.loss(ref, ref))
    assert float(d(ref, x)) == pytest.approx(expected, rel=1e-5)
    assert float(d(ref, x)) != pytest.approx(float(d(x, ref)), rel=1e-3)  # VIF is asymmetric


class CircularBlurMSE(FRMetric):
    """``mean((k * e)^2)`` with the separable kernel [0.1, 1, 0.1], circular: its Hessian is
    ``(2 / n) K^T K``, diagonal in the Fourier basis with eigenvalues ``(2 / n) |K(f)|^2``,
    ``K(f) = (1 + 0.2 cos 2 pi fy)(1 + 0.2 cos 2 pi fx)``: largest at DC (1.2^2), smallest at
    (1/2, 1/2) (0.8^2). A mild filter keeps plenoptic's power method on ``H^2`` fast."""

    def compute(self, x, ref):
        e = x - ref
        k = e.new_tensor([0.1, 1.0, 0.1])
        for dim in (-2, -1):
            e = k[0] * e.roll(1, dim) + k[1] * e + k[2] * e.roll(-1, dim)
        return e.pow(2).flatten(1).mean(1)


def test_eigendistortions_of_a_quadratic_metric_are_the_known_fourier_modes():
    pytest.importorskip("plenoptic")
    from optiqa.diagnose.synthesis import EigenOptions, eigendistortions

    m = CircularBlurMSE(MetricInfo("blur_mse", True, True, (0.0, 1.0), "test", "test"))
    ref = mid_range("rocket", 8)
    n = ref.numel()
    r = eigendistortions(m, ref, EigenOptions(max_iter=2000, stop_criterion=1e-14))
    top, bottom = (d[0] for d in r.distortions)
    # top: constant in each channel (DC); bottom: a checkerboard in each channel (f = (1/2, 1/2)),
    # any mix of channels (each eigenvalue is threefold)
    assert float((top - top.mean((1, 2), keepdim=True)).norm()) < 1e-2
    checker = torch.tensor([[(-1.0) ** (i + j) for j in range(8)] for i in range(8)])
    per_channel = (bottom * checker).sum((1, 2)) / 8  # projection on the unit checkerboard
    assert float(per_channel.norm()) == pytest.approx(1.0, abs=1e-2)
    assert r.eigenvalues[0] == pytest.approx(2 / n * 1.2 ** 4, rel=1e-3)
    assert r.eigenvalues[1] == pytest.approx(2 / n * 0.8 ** 4, rel=1e-3)
    assert r.curvature_signs == [1, 1] and r.converged[0]
    assert r.perturbed_losses[0] > r.perturbed_losses[1]


def test_eigendistortions_refuse_metrics_without_a_hessian():
    pytest.importorskip("plenoptic")
    from optiqa.diagnose.synthesis import eigendistortions

    ref = load_sample("coffee", 32)[None]
    for name in ("l1", "gmsd", "psnr"):
        with pytest.raises(InputError, match=f"{name} has no usable Hessian"):
            eigendistortions(name, ref)
