"""The 16x16-block grid of MAD (:mod:`optiqa.metrics.mad`): block statistics and the crop.

Both MAD stages compute local statistics in 16x16 blocks at stride 4 (the official MEX helpers
``ical_std.c`` and ``ical_stat.c``), each block's value covering the 4x4 pixels at its top-left
corner, and keep only the map inside the border crop ``[16, n - 17)``. This module holds that
geometry and the numerically stable block moments (combined from exact 4x4-cell moments), apart
from the perceptual model in :mod:`optiqa.metrics.mad` that uses them.
"""
from __future__ import annotations

import torch

BLOCK = 16
STRIDE = 4
BORDER = BLOCK + 1  # mp(BSIZE+1:end-BSIZE-1, ...): 16 pixels cut before, 17 after (1-based)


def cell_moments(x: torch.Tensor, order: int) -> list[torch.Tensor]:
    """Mean and central sums ``sum (x - mean)^k``, ``k = 2..order``, of the 4x4 cells of ``x``.

    Rows/columns beyond the last full cell are dropped: no 16x16 block at stride 4 reaches them.
    """
    h, w = x.shape[-2:]
    hc, wc = h // STRIDE, w // STRIDE
    cells = x[..., : hc * STRIDE, : wc * STRIDE]
    cells = cells.unflatten(-1, (wc, STRIDE)).unflatten(-3, (hc, STRIDE))
    mean = cells.mean((-3, -1), keepdim=True)  # (..., hc, 1, wc, 1)
    d = cells - mean
    d2 = d * d
    out = [mean.squeeze(-1).squeeze(-2), d2.sum((-3, -1))]
    if order >= 3:
        out.append((d2 * d).sum((-3, -1)))
    if order >= 4:
        out.append((d2 * d2).sum((-3, -1)))
    return out


def block_moments(cells: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    """Mean and central sums of the ``k x k``-cell blocks at stride one cell (4 pixels).

    Exact parallel-axis combination (Chan et al.): with ``n`` pixels per cell and each cell's
    offset ``delta = mean_cell - mean_block``,
    ``S2 = sum S2_c + n delta^2``, ``S3 = sum S3_c + 3 delta S2_c + n delta^3``,
    ``S4 = sum S4_c + 4 delta S3_c + 6 delta^2 S2_c + n delta^4``. Unlike raw moments
    ``E[x^4] - 4 mu E[x^3] + ...``, which cancel catastrophically in float32 when a block's mean
    is large against its spread (smooth coarse-scale Gabor magnitudes), every term here is small.
    """
    n = STRIDE * STRIDE

    def windows(t):  # (..., nb_h, nb_w, k, k) view of every block's cells
        return t.unfold(-2, k, 1).unfold(-2, k, 1)

    mean_c = windows(cells[0])
    mean = mean_c.mean((-2, -1))
    delta = mean_c - mean[..., None, None]
    delta2 = delta * delta
    s2_c = windows(cells[1])
    out = [mean, (s2_c + n * delta2).sum((-2, -1))]
    if len(cells) >= 3:
        s3_c = windows(cells[2])
        out.append((s3_c + delta * (3 * s2_c + n * delta2)).sum((-2, -1)))
    if len(cells) >= 4:
        s4_c = windows(cells[3])
        out.append((s4_c + delta * (4 * s3_c + delta * (6 * s2_c + n * delta2))).sum((-2, -1)))
    return out


def last_block(n: int) -> int:
    """Index of the last 16x16 block (at stride 4) whose 4x4 tile reaches the cropped map.

    Block ``a`` covers pixels ``[4a, 4a + 16)`` and writes its value to ``[4a, 4a + 4)``; the crop
    keeps ``[16, n - 17)``, so only blocks ``4 .. (n - 18) // 4`` matter. The rest of the official
    block grid is computed and then thrown away by the MATLAB code; we skip it.
    """
    return (n - BORDER - 1) // STRIDE


def blocks_region(x: torch.Tensor) -> torch.Tensor:
    """The pixels ``[16, 4 (last + 4))`` that the blocks ``4 .. last`` cover, in both directions."""
    h, w = x.shape[-2:]
    return x[..., BLOCK: STRIDE * (last_block(h) + 4), BLOCK: STRIDE * (last_block(w) + 4)]


def tiles_cropped(block_map: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Spread the values of blocks ``4 .. last`` over their 4x4 tiles and keep the crop.

    The tiles start at pixel 16, where the crop ``[16, H - 17) x [16, W - 17)`` starts.
    """
    full = block_map.repeat_interleave(STRIDE, -2).repeat_interleave(STRIDE, -1)
    return full[..., : h - BORDER - BLOCK, : w - BORDER - BLOCK]


def min_neighbour_var(var8: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``ical_std.c``'s masking variance: min over the 8x8 blocks at offsets ``{0, 4}^2``.

    ``var8`` holds the 8x8-block variances from block 4 on, one more row and column than the
    16x16 blocks. The MEX code only looks at the neighbour ``a + 1`` when ``4a + 5 < L - 15``;
    elsewhere the neighbour is replaced by the block itself (a no-op in the min).
    """
    nbh, nbw = var8.shape[-2] - 1, var8.shape[-1] - 1
    first = BLOCK // STRIDE
    rows = torch.arange(first, first + nbh, device=var8.device)
    cols = torch.arange(first, first + nbw, device=var8.device)
    rows_ok = (rows * STRIDE + 5 < h - 15)[:, None]
    cols_ok = (cols * STRIDE + 5 < w - 15)[None, :]
    v00 = var8[..., :nbh, :nbw]
    v10 = torch.where(rows_ok, var8[..., 1:, :nbw], v00)
    v01 = torch.where(cols_ok, var8[..., :nbh, 1:], v00)
    v11 = torch.where(rows_ok & cols_ok, var8[..., 1:, 1:], v00)
    return torch.minimum(torch.minimum(v00, v10), torch.minimum(v01, v11))
