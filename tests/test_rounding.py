"""One rounding for the whole package: MATLAB's halves away from zero (ops/rounding).

The copies it replaced disagreed on ties: ``data/io.py`` rounded an image to uint8 with
``torch.round`` (halves to even: 2.5 -> 2), the others with ``floor(v + 0.5)`` (2.5 -> 3), and
``train/sr_protocol.py`` took 8-bit levels with ``torch.round`` before a MATLAB ``rgb2ycbcr``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from optiqa.data.io import read_image, to_uint8 as io_to_uint8, write_image
from optiqa.ops.rounding import (matlab_downsample_factor, matlab_round, quantize_8bit,
                                 round_half_away, to_uint8)

# (k + 1/2) / 255 times 255 is exactly k + 1/2 in float32 and float64 for these k
TIES = torch.tensor([0.5, 1.5, 2.5, 3.5, 100.5, 254.5]) / 255
AWAY = [1, 2, 3, 4, 101, 255]  # MATLAB: uint8(x), round(x)


def test_matlab_round_goes_away_from_zero_on_ties():
    assert [matlab_round(v) for v in (0.5, 1.5, 2.5, -0.5, -2.5, 2.4999, -2.5001)] == \
        [1, 2, 3, -1, -3, 2, -3]
    assert [round(v) for v in (0.5, 2.5)] == [0, 2]  # why Python's round is not used
    t = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49])
    assert round_half_away(t).tolist() == [-3, -2, -1, 1, 2, 3, 0]


def test_eight_bit_ties_round_up_in_every_path(tmp_path):
    assert (TIES * 255).tolist() == [0.5, 1.5, 2.5, 3.5, 100.5, 254.5]
    assert to_uint8(TIES).tolist() == AWAY
    assert (quantize_8bit(TIES) * 255).round().tolist() == AWAY
    assert to_uint8((TIES * 255).double() / 255).tolist() == AWAY
    # the image writer (it used to round these to even: 0, 2, 2, 4, 100, 254)
    img = TIES.view(1, 1, 6).expand(3, 1, 6).contiguous()
    assert io_to_uint8(img)[0, :, 0].tolist() == AWAY
    write_image(tmp_path / "t.png", img)
    assert (read_image(tmp_path / "t.png") * 255).round()[0, 0].tolist() == AWAY


def test_clamping_and_dtype():
    x = torch.tensor([-0.2, 0.0, 1.0, 1.7])
    assert to_uint8(x).tolist() == [0, 0, 255, 255] and to_uint8(x).dtype == torch.uint8
    assert quantize_8bit(x).tolist() == [0.0, 0.0, 1.0, 1.0]
    assert to_uint8(TIES.half()).dtype == torch.uint8


def test_the_rgb2ycbcr_levels_round_like_matlab():
    """The SR protocol's MATLAB ``rgb2ycbcr`` on uint8 takes the levels with MATLAB's round."""
    from optiqa.restore.protocol import _rgb2ycbcr_uint8_y

    grey = TIES[2].expand(1, 3, 1, 1)  # R = G = B = 2.5 / 255 -> level 3, as MATLAB's uint8()
    y = 16 + (65.481 + 128.553 + 24.966) * 3 / 255
    assert float(_rgb2ycbcr_uint8_y(grey)) * 255 == pytest.approx(np.floor(y + 0.5))


def test_downsample_factor_is_the_official_formula():
    # max(1, round(min(H, W) / 256)); 384 / 256 = 1.5 is a tie: MATLAB gives 2
    assert [matlab_downsample_factor(s, 999) for s in (128, 383, 384, 512, 640)] == \
        [1, 1, 2, 2, 3]
