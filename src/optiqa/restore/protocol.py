"""PSNR and SSIM on the Y channel as SR tables compute them: two protocols in common use.

Both score an 8-bit output against the ground truth, each cropped by a border (the scale), on
the Y channel of BT.601 YCbCr (MATLAB ``rgb2ycbcr``: ``Y = 16 + (65.481 R + 128.553 G +
24.966 B) / 255`` for R, G, B in 0..255), with PSNR ``10 log10(255^2 / MSE)`` and the SSIM of
Wang et al. 2004 (11x11 Gaussian window, sigma 1.5, ``K = (0.01, 0.03)``, ``L = 255``, 'valid'
windows, no downsampling). They differ in two steps that move the tables' last digits:

``matlab`` -- the MATLAB evaluation behind the published tables (SRCNN's and VDSR's scripts,
whose bicubic row EDSR, RCAN and later papers reprint), on 8-bit files:

- a colour image's Y is ``rgb2ycbcr`` of a ``uint8`` image, which is ``uint8``: rounded to an
  integer in [16, 235];
- a greyscale file (one channel: Set14's ``bridge``) is not converted: its grey values, 0..255,
  are compared as they are. An output with three channels is turned into grey as ``rgb2gray``
  would (rounded; the grey value itself when its channels are equal);
- SSIM is ``ssim_index.m`` (2003) on those planes.

(RCAN's ``Evaluate_PSNR_SSIM.m`` converts with ``im2double`` first, so its colour Y is not
rounded: ``basicsr``'s numbers on colour images, ``matlab``'s treatment of greyscale files.)

``basicsr`` -- BasicSR's ``calculate_psnr`` / ``calculate_ssim`` with ``test_y_channel=True``
(SwinIR, Real-ESRGAN, most PyTorch-era tables): images are read as three channels (OpenCV
expands a greyscale file), and Y is kept in floating point, not rounded. These are optiqa's
registered ``psnr_y`` and ``ssim_y``.

With the bicubic x4 baseline the first reproduces the published row (Set5 28.42 / 0.8104, Set14
26.00 / 0.7027, BSD100 25.96 / 0.6675) within 0.006 dB and 0.0003; the second gives 28.43 /
0.8113, 26.09 / 0.7049, 25.96 / 0.6682 (docs/evaluation.md). Set14's 0.09 dB is its greyscale
image: expanded to RGB, its Y is ``16 + 219/255 g``, which shrinks every difference by 219/255
(+1.32 dB on that image). Rounding Y adds quantisation noise: -0.004 to -0.013 dB and -0.0006
to -0.0011 SSIM on the set means (``bench/sr_protocols.py`` separates the steps).
"""
from __future__ import annotations

import torch

from optiqa.metrics.pixel import psnr
from optiqa.metrics.ssim import ssim
from optiqa.ops.color import rgb_to_gray, rgb_to_y, round_to_8bit
from optiqa.ops.rounding import round_half_away

PROTOCOLS = {
    "matlab": "MATLAB protocol (rgb2ycbcr of uint8: Y rounded to 8 bits; greyscale files "
              "compared as grey; ssim_index.m)",
    "basicsr": "BasicSR protocol (calculate_psnr/ssim, test_y_channel=True: Y in float; "
               "greyscale files expanded to RGB)",
}
PROTOCOL_METRICS = ("psnr_y", "ssim_y")

# PIL modes of single-channel files (what MATLAB's imread returns as an H x W array)
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def check_protocol(name: str) -> str:
    from optiqa.core.errors import ConfigError

    if name not in PROTOCOLS:
        raise ConfigError(f"unknown SR protocol {name!r}; choose one of {', '.join(PROTOCOLS)}",
                          option="protocol")
    return name


def is_greyscale_file(path) -> bool:
    """Whether an image file has a single (grey) channel, read from its header."""
    from PIL import Image

    with Image.open(path) as im:
        return im.mode in _GREY_MODES


def is_greyscale_image(x: torch.Tensor) -> bool:
    """Whether an RGB ``(N, 3, H, W)`` or ``(3, H, W)`` image is grey: its three channels are
    equal at every pixel (how a one-channel image is expanded to RGB)."""
    c = x.shape[-3]
    return c == 1 or bool((x[..., 0:1, :, :] == x[..., 1:, :, :]).all())


def y_planes(x: torch.Tensor, ref: torch.Tensor, protocol: str, greyscale: bool = False
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(N, 1, H, W)`` float64 planes in [0, 1] that ``protocol`` compares (module docs).

    ``x`` (output) and ``ref`` (ground truth) are RGB ``NCHW`` in [0, 1], already 8-bit levels
    and cropped; ``greyscale``: the ground-truth file has one channel (``ref``'s channels equal).
    """
    x, ref = x.double(), ref.double()
    if protocol == "basicsr":
        return rgb_to_y(x), rgb_to_y(ref)
    check_protocol(protocol)
    if greyscale:
        if x.shape[1] == 1 or bool((x == x[:, :1]).all()):
            return x[:, :1], ref[:, :1]
        return round_to_8bit(rgb_to_gray(x)), ref[:, :1]
    return _rgb2ycbcr_uint8_y(x), _rgb2ycbcr_uint8_y(ref)


# MATLAB rgb2ycbcr: Y = 16 + T * [R G B] / 255 with R, G, B in 0..255
_RGB2YCBCR_Y = (65.481, 128.553, 24.966)


def _rgb2ycbcr_uint8_y(img: torch.Tensor) -> torch.Tensor:
    """Y of MATLAB ``rgb2ycbcr`` on a uint8 image, in [0, 1]: from the integer levels
    ``round(255 img)``, ``16 + (T / 255) . [R G B]`` rounded half up to an integer (the uint8
    output). Working from the integers keeps rounding ties where MATLAB has them."""
    levels = round_half_away(img.double() * 255.0)
    weights = levels.new_tensor(_RGB2YCBCR_Y).view(1, 3, 1, 1) / 255.0
    y = 16.0 + (levels * weights).sum(1, keepdim=True)
    return torch.floor(y + 0.5) / 255.0


def protocol_scores(x: torch.Tensor, ref: torch.Tensor, protocol: str, greyscale: bool = False
                    ) -> dict[str, torch.Tensor]:
    """``{"psnr_y": (N,), "ssim_y": (N,)}`` under ``protocol`` (PSNR in dB, peak 255)."""
    yx, yref = y_planes(x, ref, protocol, greyscale)
    # One-channel planes: 'rgb' means "no conversion", so these are plain PSNR and SSIM. The
    # planes are made in float64 (exact rounding); SSIM's windows run in float32, 30x faster
    # on the CPU and within 4e-6 of float64 per image on Set5 and Set14.
    return {"psnr_y": psnr(yx, yref, channel="rgb"),
            "ssim_y": ssim(yx.float(), yref.float(), colour="rgb").double()}
