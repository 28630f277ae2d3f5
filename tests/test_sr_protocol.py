"""SR evaluation protocols (MATLAB tables, BasicSR) and no-reference metrics in `evaluate`."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate
from scipy.signal import correlate2d

from conftest import shared_path
from imaging import astronaut_crop, box_blur, noisy
from optiqa.cli import main
from optiqa.core.errors import ConfigError
from optiqa.data.io import write_image
from optiqa.metrics import MetricInfo, NRMetric, register_metric
from optiqa.metrics.registry import REGISTRY as METRICS
from optiqa.restore.scoring import evaluate_images, evaluate_sets, format_results
from optiqa.ops.rounding import quantize_8bit
from optiqa.restore.generator import load_generator
from optiqa.restore.protocol import protocol_scores, y_planes

# x4 bicubic, PSNR-Y / SSIM-Y with a 4 px border, as printed in EDSR, RCAN, ... (from VDSR)
PUBLISHED_BICUBIC_X4 = {"Set5": (28.42, 0.8104), "Set14": (26.00, 0.7027),
                        "BSD100": (25.96, 0.6675)}


@pytest.mark.parametrize("name", list(PUBLISHED_BICUBIC_X4))
def test_matlab_protocol_reproduces_the_published_bicubic_row(name):
    root = shared_path("sr", name)
    loaded = load_generator("bicubic", scale=4)
    res = evaluate_sets(loaded, {name: str(root)}, progress=False)  # protocol="matlab"
    psnr, ssim = res.sets[0].mean("psnr_y"), res.sets[0].mean("ssim_y")
    want_psnr, want_ssim = PUBLISHED_BICUBIC_X4[name]
    assert abs(psnr - want_psnr) < 0.01 and abs(ssim - want_ssim) < 0.0005, (psnr, ssim)
    assert res.protocol == "matlab" and "LR_bicubic" in res.sets[0].lq_source
    assert res.sets[0].greyscale == (["img_003"] if name == "Set14" else [])


# ---------------------------------------------------------------------------------------------
# the two protocols against transliterations of the code that defines them
# ---------------------------------------------------------------------------------------------
def _fspecial_gaussian(size=11, sigma=1.5):
    r = np.arange(size) - (size - 1) / 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _ssim_index_m(a, b):
    """ssim_index.m (Wang 2003) defaults on 0..255 double planes: filter2(..., 'valid')."""
    w, c1, c2 = _fspecial_gaussian(), (0.01 * 255) ** 2, (0.03 * 255) ** 2
    f = lambda z: correlate2d(z, w, mode="valid")  # noqa: E731
    mu1, mu2 = f(a), f(b)
    s1, s2, s12 = f(a * a) - mu1 ** 2, f(b * b) - mu2 ** 2, f(a * b) - mu1 * mu2
    return np.mean((2 * mu1 * mu2 + c1) * (2 * s12 + c2) /
                   ((mu1 ** 2 + mu2 ** 2 + c1) * (s1 + s2 + c2)))


def _matlab_reference(sr_u8, hr_u8):
    """SRCNN/VDSR-era MATLAB: rgb2ycbcr of uint8 (rounded) for colour, grey kept; 255 peak."""
    def y(u8):
        if u8.ndim == 2:
            return u8.astype(np.float64)
        t = np.array([65.481, 128.553, 24.966]) / 255
        return np.floor(16 + u8.astype(np.float64) @ t + 0.5)
    a, b = y(hr_u8), y(sr_u8)
    return 10 * np.log10(255 ** 2 / np.mean((a - b) ** 2)), _ssim_index_m(a, b)


def _basicsr_reference(sr_u8, hr_u8):
    """basicsr.metrics calculate_psnr/ssim(test_y_channel=True) on cv2-read (3-channel) uint8."""
    def y(u8):
        if u8.ndim == 2:
            u8 = np.repeat(u8[:, :, None], 3, axis=2)  # cv2.imread(IMREAD_COLOR)
        img = u8.astype(np.float32) / 255.0
        return ((img @ np.array([65.481, 128.553, 24.966], np.float32) + 16.0) / 255.0
                * 255.0).astype(np.float64)
    a, b = y(hr_u8), y(sr_u8)
    w = _fspecial_gaussian()
    f = lambda z: correlate(z, w, mode="mirror")[5:-5, 5:-5]  # noqa: E731  filter2D, valid
    mu1, mu2 = f(a), f(b)
    s1, s2, s12 = f(a * a) - mu1 ** 2, f(b * b) - mu2 ** 2, f(a * b) - mu1 * mu2
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim = np.mean((2 * mu1 * mu2 + c1) * (2 * s12 + c2) /
                   ((mu1 ** 2 + mu2 ** 2 + c1) * (s1 + s2 + c2)))
    return 10 * np.log10(255 ** 2 / np.mean((a - b) ** 2)), ssim


def _u8(t):
    arr = (t[0] * 255).round().byte().numpy()
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


@pytest.mark.parametrize("grey", [False, True])
def test_protocols_equal_their_reference_code(grey):
    hr = astronaut_crop(96)
    if grey:
        hr = quantize_8bit(hr.mean(1, keepdim=True))
    sr = quantize_8bit(noisy(box_blur(hr, 3), 0.03))
    rgb = lambda t: t.expand(-1, 3, -1, -1)  # noqa: E731  what the evaluator hands over
    for protocol, reference in (("matlab", _matlab_reference), ("basicsr", _basicsr_reference)):
        got = protocol_scores(rgb(sr), rgb(hr), protocol, greyscale=grey)
        want = reference(_u8(sr), _u8(hr))
        assert float(got["psnr_y"]) == pytest.approx(want[0], abs=1e-6), protocol
        assert float(got["ssim_y"]) == pytest.approx(want[1], abs=2e-6), protocol


def test_greyscale_ground_truth_known_answer():
    """A grey image scored as grey (matlab) vs. expanded to RGB (basicsr): every difference of
    the unrounded Y = 16/255 + 219/255 g shrinks by 219/255, so PSNR rises by 20 log10(255/219)."""
    g = quantize_8bit(torch.linspace(0.1, 0.9, 64 * 64).view(1, 1, 64, 64))
    x = quantize_8bit(g + 0.02 * (torch.arange(64 * 64).view(1, 1, 64, 64) % 3 - 1))
    grey_psnr = 10 * math.log10(1 / float(((x.double() - g.double()) ** 2).mean()))
    matlab = protocol_scores(x.expand(-1, 3, -1, -1), g.expand(-1, 3, -1, -1), "matlab", True)
    basicsr = protocol_scores(x.expand(-1, 3, -1, -1), g.expand(-1, 3, -1, -1), "basicsr", True)
    assert float(matlab["psnr_y"]) == pytest.approx(grey_psnr, abs=1e-9)
    assert float(basicsr["psnr_y"] - matlab["psnr_y"]) == pytest.approx(
        20 * math.log10(255 / 219), abs=1e-9)


def test_matlab_y_is_rounded_and_three_channel_output_on_grey_becomes_grey():
    hr = astronaut_crop(32)
    yx, yr = y_planes(hr, hr, "matlab")
    levels = yr * 255
    assert torch.equal(levels, levels.round()) and 16 <= levels.min() and levels.max() <= 235
    g = quantize_8bit(hr.mean(1, keepdim=True)).expand(-1, 3, -1, -1)
    yx, yr = y_planes(hr, g, "matlab", greyscale=True)
    want = torch.floor((hr.double() * torch.tensor([0.298936021293775, 0.587043074451121,
                                                    0.114020904255103]).view(1, 3, 1, 1).double()
                        ).sum(1, keepdim=True) * 255 + 0.5) / 255
    assert torch.equal(yr, g[:, :1].double()) and torch.allclose(yx, want, atol=1e-12)
    with pytest.raises(ConfigError, match="unknown SR protocol 'octave'"):
        y_planes(hr, hr, "octave")


# ---------------------------------------------------------------------------------------------
# no-reference metrics, stored images, the command line
# ---------------------------------------------------------------------------------------------
class Brightness(NRMetric):
    def compute(self, x):
        return x.mean(dim=(1, 2, 3))


@pytest.fixture
def nr_metric():
    info = MetricInfo("test_nr_brightness", lower_better=False, differentiable=False,
                      score_range=(0.0, 1.0), approach="test", citation="a stand-in", kind="nr")
    register_metric(info, Brightness)
    yield "test_nr_brightness"
    METRICS.unregister("test_nr_brightness")


def test_nr_metric_on_sr_sets_scores_the_cropped_output(nr_metric):
    loaded = load_generator("bicubic", scale=2)
    res = evaluate_sets(loaded, {"S": "builtin:samples/32"}, ["psnr_y", nr_metric],
                        progress=False, protocol="basicsr")
    assert res.kinds == {"psnr_y": "fr", nr_metric: "nr"}
    from optiqa.data.task_datasets import SRTestDataset

    item = SRTestDataset("builtin:samples/32", scale=2)[0]
    sr = quantize_8bit(loaded.model(item["lq"][None]).clamp(0, 1))[..., 2:-2, 2:-2]
    assert res.sets[0].scores[nr_metric][0] == pytest.approx(float(sr.mean()), abs=1e-6)
    text = format_results(res)
    assert f"{nr_metric} (NR, crop 2)" in text and "PSNR-Y dB (basicsr, crop 2)" in text
    assert "NR metrics on the output alone" in text


def _restored_folder(tmp_path):
    hr, out = tmp_path / "hr", tmp_path / "out"
    imgs = {"baby": astronaut_crop(40), "bird": astronaut_crop(40, top=10, left=10)}
    for k, v in imgs.items():
        write_image(hr / f"{k}.png", v[0])
        # restored images named as SR codes do, one 2 px smaller (a multiple-of-scale crop)
        restored = quantize_8bit(noisy(v, 0.02))[0]
        write_image(out / f"{k}_x4_SR.png", restored[..., :38, :38] if k == "bird" else restored)
    return hr, out


def test_stored_images_with_and_without_ground_truth(tmp_path, nr_metric):
    hr, out = _restored_folder(tmp_path)
    from optiqa.core.errors import InputError

    with pytest.raises(InputError, match=r"bird_x4_SR.png: size 38x38 differs from its ground truth"):
        evaluate_images(out, hr, progress=False)  # no scale: sizes must match
    res = evaluate_images(out, hr, ["psnr_y", "ssim_y", nr_metric], crop=4, scale=4,
                          progress=False)
    s = res.sets[0]
    assert s.keys == ["baby_x4_SR", "bird_x4_SR"] and 25 < s.mean("psnr_y") < 40
    assert "1 ground truth image(s) cropped" in s.lq_source and res.border == 4
    assert res.scale is None and "restored images as stored" in res.convention
    alone = evaluate_images(out, None, [nr_metric], progress=False)
    assert alone.metrics == [nr_metric] and len(alone.sets[0].keys) == 2
    with pytest.raises(ConfigError, match=r"full-reference metric\(s\) psnr_y need the ground"):
        evaluate_images(out, None, ["psnr_y", nr_metric], progress=False)
    with pytest.raises(ConfigError, match="only no-reference metrics"):
        evaluate_images(out, None, progress=False)


def test_cli_images_mode(tmp_path, capsys, nr_metric):
    hr, out = _restored_folder(tmp_path)
    rc = main(["evaluate", "--images", str(out), "-m", nr_metric, "-q", "--json",
               str(tmp_path / "r.json")])
    assert rc == 0
    text = capsys.readouterr().out
    assert f"{nr_metric} (NR, crop 0)" in text and "PSNR" not in text
    rc = main(["evaluate", "--images", str(out), "--hr", str(hr), "--crop-border", "4", "-q",
               "--protocol", "basicsr", "--json", str(tmp_path / "r.json")])
    assert rc == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["protocol"] == "basicsr" and res["crop_border"] == 4
    assert set(res["sets"]["out"]["mean"]) == {"psnr_y", "ssim_y"}
    assert "PSNR-Y dB (basicsr, crop 4)" in capsys.readouterr().out
    assert main(["evaluate", "--images", str(out), "-m", "psnr", "-q"]) == 2
    assert "--hr" in capsys.readouterr().err  # the flag that supplies the ground truth
    assert main(["evaluate", "bicubic", "--images", str(out), "-q"]) == 2
    assert main(["evaluate", "bicubic", "-q"]) == 2
    assert "at least one --set" in capsys.readouterr().err
