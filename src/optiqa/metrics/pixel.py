"""Pixel-wise metrics: L1, MSE, PSNR (RGB or BT.601 Y).

Each is a pure function of ``(x, ref)`` returning per-image values ``(N,)`` plus a thin module.
"""
from __future__ import annotations

import torch

from optiqa.ops.color import rgb_to_y
from optiqa.metrics.base import FRMetric

# MSE floor: PSNR of identical images is 10*log10(1/1e-10) = 100 dB instead of inf, which keeps
# -PSNR usable as a loss and tables free of inf.
MSE_FLOOR = 1e-10
PSNR_CAP_DB = 100.0  # = 10 log10(1 / MSE_FLOOR): what identical images score


def l1(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image: ``mean |x - ref|``."""
    return (x - ref).abs().flatten(1).mean(1)


class _PerImageMSE(torch.autograd.Function):
    """``mean((x - ref)^2)`` per image with a one-pass backward ``d/dx = 2 (x - ref) / K`` (``K``
    values per image). Autograd's chain of a square, a mean and their backwards makes three
    more full-size temporaries (2x slower as a loss on the CPU). When a second derivative is
    asked for (``create_graph``: diagnose's Hessian-vector products), the backward recomputes
    the difference from the saved inputs with differentiable operations, so it stays exact.
    """

    @staticmethod
    def forward(ctx, x, ref):
        diff = x - ref
        ctx.save_for_backward(x, ref, diff)
        flat = diff.flatten(1)
        # the sum of squares as one dot product per image (no squared temporary)
        return torch.linalg.vecdot(flat, flat) / flat.shape[1]

    @staticmethod
    def backward(ctx, grad):
        x, ref, diff = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: keep the graph through x and ref
            diff = x - ref
        k = x[0].numel()
        g = diff * (grad * (2.0 / k)).view(-1, *([1] * (x.ndim - 1)))
        return (g if ctx.needs_input_grad[0] else None,
                -g if ctx.needs_input_grad[1] else None)


def mse(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image: ``mean (x - ref)^2``."""
    if x.shape != ref.shape:  # the fused path needs equal shapes (no broadcasting)
        return (x - ref).pow(2).flatten(1).mean(1)
    return _PerImageMSE.apply(x, ref)


def psnr(x: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0,
         channel: str = "rgb", crop_border: int = 0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range^2 / MSE)``, MSE over all pixels.

    ``channel="y"`` computes it on the BT.601 Y channel (MATLAB ``rgb2ycbcr``), the SR convention;
    ``crop_border`` removes that many pixels on each side first (SR tables use the scale).
    MSE is floored at 1e-10, so identical images give 100 dB.
    """
    if channel == "y":
        x, ref = rgb_to_y(x), rgb_to_y(ref)
    elif channel != "rgb":
        raise ValueError(f"channel must be 'rgb' or 'y', got {channel!r}")
    if crop_border:
        c = crop_border
        x, ref = x[..., c:-c, c:-c], ref[..., c:-c, c:-c]
    err = mse(x, ref).clamp_min(MSE_FLOOR * data_range ** 2)
    return 10.0 * torch.log10(data_range ** 2 / err)


class L1(FRMetric):
    def compute(self, x, ref):
        return l1(x, ref)


class MSE(FRMetric):
    def compute(self, x, ref):
        return mse(x, ref)


class PSNR(FRMetric):
    def __init__(self, info=None, channel: str = "rgb", crop_border: int = 0):
        super().__init__(info)
        self.channel, self.crop_border = channel, crop_border

    def compute(self, x, ref):
        return psnr(x, ref, channel=self.channel, crop_border=self.crop_border)
