"""The shortcuts of BRISQUE's pipeline against the plain computations they replace.

The grey levels (ops/gray8.py), the 0.5 resize of integer images (ops/resize.py's
imresize_half_integers) and the strip MSCN with its flat test (ops/nss.py) claim the same bits as
the plain path: checked with torch.equal on photos and on adversarial inputs (random levels,
checkerboards, extreme values, odd and tiny sizes, batches, zeros), the float32 grey levels on
all 2^24 RGB triplets. The GGD/AGGD fits from plane sums (ops/nss_pairs.py) change the float64
rounding only: checked against a plain NumPy transliteration within 1e-12 relative, bit for bit
where they fall back to the products, and BRISQUE's calibration scores against the previous
code's within 1e-10.
"""
import numpy as np
import pytest
import torch
from scipy.ndimage import maximum_filter, minimum_filter

from nss_plain import aggd_plain, ggd_plain
from optiqa.ops import flat_windows, gray8, nss
from optiqa.ops.color import MATLAB_GRAY_WEIGHTS
from optiqa.ops.filters import gaussian_kernel1d, pad
from optiqa.ops.nss import BRISQUE_SHIFTS, NIQE_SHIFTS, aggd_fit, mscn, paired_products
from optiqa.ops.nss_pairs import nss_fits, paired_aggd_fits
from optiqa.ops.resize import (_half_taps, _mirrored_taps, imresize, imresize_half_integers,
                               imresize_matrix)


def _photo_gray(size=(160, 212)):
    from optiqa.data.samples import load_sample

    img = load_sample("astronaut")[None, :, 30:30 + size[0], 100:100 + size[1]].clone()
    img[..., 5:40, 10:60] = 1.0                       # a saturated patch: flat windows
    with torch.no_grad():
        return gray8.gray_255(img)


# ----------------------------------------------------------------------------- grey levels
def test_gray_rounding_margin_over_all_8bit_triplets():
    """The docstring's DELTA: the exact sum + 0.5 (weights as integers times 2^-56, mod 2^56 in
    uint64) is never closer than 4.56e-6 to an integer, attained at (255, 206, 117)."""
    scale = 56
    ints = [int(np.ldexp(w, scale)) for w in MATLAB_GRAY_WEIGHTS]
    assert [np.ldexp(float(i), -scale) for i in ints] == list(MATLAB_GRAY_WEIGHTS)  # exact
    levels = np.arange(256, dtype=np.uint64)
    rg = levels[:, None] * np.uint64(ints[0]) + levels[None, :] * np.uint64(ints[1])
    mask, half = np.uint64((1 << scale) - 1), np.int64(1 << (scale - 1))
    best, where = None, None
    for b in range(256):
        frac = ((rg + np.uint64(b) * np.uint64(ints[2])) & mask).astype(np.int64)
        dist = np.abs(frac - half)
        i = int(np.argmin(dist))
        if best is None or dist.flat[i] < best:
            best, where = int(dist.flat[i]), (i // 256, i % 256, b)
    assert where == (255, 206, 117)
    assert 4.56e-6 < best / 2.0 ** scale < 4.57e-6


def test_float32_gray_equals_float64_sum_on_all_8bit_triplets():
    v = torch.arange(256, dtype=torch.float32)
    g, b = v[None, :, None].expand(32, 256, 256), v.expand(32, 256, 256)
    for r0 in range(0, 256, 32):
        r = (r0 + torch.arange(32, dtype=torch.float32))[:, None, None].expand(32, 256, 256)
        levels = torch.stack([r, g, b]).reshape(1, 3, 32 * 256, 256)
        assert torch.equal(gray8.gray_of_levels(levels), gray8.gray_float64(levels)), r0


def test_gray_255_strips_equal_the_float64_path_and_fall_back_off_levels():
    rng = np.random.default_rng(0)
    levels = torch.from_numpy(rng.integers(0, 256, (2, 3, 131, 97))).float()
    for x in (levels / 255, (levels / 255)[..., :1, :], levels[:1] / 255):
        assert torch.equal(gray8.gray_255(x), gray8.gray_float64(torch.round(x.double() * 255)))
    # one channel off its level in the last strip only: the whole image takes the float64 path
    off = levels / 255
    off[1, 2, -1, -1] += 0.3 / 255
    with torch.enable_grad():
        slow = gray8.gray_255(off.clone().requires_grad_()).detach()
    assert gray8._gray_of_uint8_levels(off) is None
    assert torch.equal(gray8.gray_255(off), slow)
    x64 = (levels / 255).double() * 0.999                            # off levels: float64 path
    before = x64.clone()
    gray8.gray_255(x64)
    assert torch.equal(x64, before)                                 # the input is not scaled


# ----------------------------------------------------------------------------- 0.5 resize
def _half_1d(x, dim):
    taps = _mirrored_taps(x.shape[dim], x.device)
    return _half_taps(x.index_select(dim, taps[0::2]), x.index_select(dim, taps[1::2]), dim,
                      (x.shape[dim] + 1) // 2)


@pytest.mark.parametrize("n", list(range(4, 41)) + [95, 96, 97, 288, 576, 721])
def test_half_resize_taps_are_the_matrix_of_imresize(n):
    dense = imresize_matrix(n, (n + 1) // 2, 0.5)
    assert torch.equal(_half_1d(torch.eye(n, dtype=torch.float64), -2), dense)
    assert torch.equal(dense * 256, (dense * 256).round())         # multiples of 1/256


def test_half_resize_equals_the_dense_product_on_integer_images():
    rng = np.random.default_rng(1)
    cases = [rng.integers(0, 256, (1, 1, 96, 131)), rng.integers(0, 256, (3, 1, 33, 40)),
             rng.integers(-(1 << 20) + 1, 1 << 20, (2, 1, 57, 64)),
             rng.integers(0, 256, (1, 1, 4, 5)),
             (np.indices((1, 1, 41, 38)).sum(0) % 2) * 255,          # checkerboard
             np.full((1, 1, 30, 30), 255)]
    for case in cases:
        x = torch.from_numpy(case).double()
        assert torch.equal(imresize_half_integers(x), imresize(x, scale=0.5))
        if np.abs(case).max() <= 255:
            assert torch.equal(imresize_half_integers(x, integers=True), imresize(x, scale=0.5))
    gray = _photo_gray()
    assert torch.equal(imresize_half_integers(gray, integers=True), imresize(gray, scale=0.5))


def test_half_resize_of_other_inputs_is_the_dense_product():
    x = torch.rand(1, 1, 40, 52, dtype=torch.float64) * 255          # not integers
    assert torch.equal(imresize_half_integers(x), imresize(x, scale=0.5))
    big = torch.full((1, 1, 8, 8), float(1 << 21), dtype=torch.float64)
    assert torch.equal(imresize_half_integers(big), imresize(big, scale=0.5))
    y = torch.randint(0, 256, (1, 1, 20, 24)).double().requires_grad_()
    out = imresize_half_integers(y, integers=True)                     # autograd: dense
    out.sum().backward()
    assert out.grad_fn is not None and torch.isfinite(y.grad).all()


# ----------------------------------------------------------------------------- MSCN
def _mscn_full_size(img, padding):
    """The plain no-gradient MSCN: whole-image passes with the same operations as the strips
    (pad, 7 multiply-adds per direction, |w*I^2 - mu^2|, (I - mu) / (sqrt + 1)), flat windows
    zeroed by the full running max/min test."""
    taps = gaussian_kernel1d(7, 7 / 6, dtype=torch.float64).tolist()
    ch = img.shape[1]
    p = pad(img, (3, 3, 3, 3), padding)
    p = torch.cat([p, p * p], 1)
    h, w = img.shape[-2:]
    rows = p[..., 0:h, :] * taps[0]
    for k in range(1, 7):
        rows.add_(p[..., k:k + h, :], alpha=taps[k])
    mom = rows[..., 0:w] * taps[0]
    for k in range(1, 7):
        mom.add_(rows[..., k:k + w], alpha=taps[k])
    mu, var = mom[:, :ch], mom[:, ch:]
    var.addcmul_(mu, mu, value=-1.0).abs_()
    coeffs = torch.sub(img, mu).div_(var.sqrt().add_(1.0))
    return coeffs.masked_fill(_flat_scipy(img, padding), 0.0)


def _flat_scipy(img, padding):
    mode, cval = ("nearest", 0.0) if padding == "replicate" else ("constant", 0.0)
    x = img.numpy()
    size = (1, 1, 7, 7)
    hi = maximum_filter(x, size=size, mode=mode, cval=cval)
    lo = minimum_filter(x, size=size, mode=mode, cval=cval)
    return torch.from_numpy(hi - lo <= flat_windows.FLAT_TOLERANCE)


def test_flat_windows_equal_scipy_running_max_min():
    rng = np.random.default_rng(2)
    mostly_flat = (rng.random((2, 1, 37, 45)) < 0.03) * 200.0
    for img in (torch.from_numpy(mostly_flat), _photo_gray((60, 70))):
        for padding in ("replicate", 0):
            flat = flat_windows.flat_windows(img, padding)
            assert flat.any() and not flat.all()
            assert torch.equal(flat, _flat_scipy(img, padding))


@pytest.mark.parametrize("padding", ["replicate", 0])
def test_strip_mscn_equals_full_size_passes(padding, monkeypatch):
    rng = np.random.default_rng(3)
    flat_patch = rng.integers(0, 256, (2, 1, 70, 53)).astype(np.float64)
    flat_patch[0, 0, 10:30, 5:25] = 40.0
    half = imresize(_photo_gray(), scale=0.5)                      # non-integer values
    images = [_photo_gray(), half, torch.from_numpy(flat_patch),
              torch.from_numpy((rng.random((1, 1, 40, 40)) < 0.02) * 90.0),  # many candidates
              torch.from_numpy(rng.integers(0, 256, (1, 1, 7, 9)).astype(np.float64))]
    for strip in (nss.STRIP_ELEMENTS, 700):                       # many uneven strips too
        monkeypatch.setattr(nss, "STRIP_ELEMENTS", strip)
        for img in images:
            with torch.no_grad():
                assert torch.equal(mscn(img, padding), _mscn_full_size(img, padding))


def test_integer_variance_floor_holds_for_the_kernel():
    """The bound behind mscn(integers=True): a non-flat window of integers has a weighted
    variance of at least w_min (1 - w_min) (two groups split at a gap >= 1), w_min the corner
    weight; it must be far above the 1e-6 candidate threshold and not above the exact minimum."""
    taps = gaussian_kernel1d(7, 7 / 6, dtype=torch.float64)
    w_min = float(taps.min()) ** 2
    assert w_min * (1 - w_min) >= flat_windows.INTEGER_VARIANCE_FLOOR > 100 * 1e-6
    # the bound is attained: one corner pixel one level up is the least variance there is
    img = torch.full((1, 1, 7, 7), 37.0, dtype=torch.float64)
    img[..., 0, 0] = 38.0
    taps2 = taps[:, None] * taps[None, :]
    mu = (taps2 * img[0, 0]).sum()
    var = (taps2 * (img[0, 0] - mu) ** 2).sum()
    assert var == pytest.approx(w_min * (1 - w_min), rel=1e-12)
    with torch.no_grad():   # its centre is not flat: its coefficient stays (I - mu) / (sigma + 1)
        centre = mscn(img, "replicate", integers=True)[0, 0, 3, 3]
    assert centre != 0 and centre == mscn(img, "replicate")[0, 0, 3, 3]


@pytest.mark.parametrize("padding", ["replicate", 0])
def test_integer_mscn_skips_the_flat_test_with_the_same_bits(padding, monkeypatch):
    """integers=True (grey levels) takes the candidates as the flat windows: equal bit for bit
    to the exact test, on few candidates (gathered), many (full passes), near-flat windows (a
    corner pixel one level off), with and without a gradient."""
    rng = np.random.default_rng(5)
    near_flat = np.full((1, 1, 40, 46), 120.0)
    near_flat[0, 0, ::9, ::11] = 121.0                   # windows one level off at a corner
    images = [_photo_gray(), torch.from_numpy(near_flat),
              torch.from_numpy((rng.random((1, 1, 40, 40)) < 0.02) * 90.0),  # many candidates
              torch.from_numpy(rng.integers(0, 256, (2, 1, 33, 29)).astype(np.float64))]
    tested = {"full": 0}
    exact_full = flat_windows.flat_windows

    def full(img, pad_mode):
        tested["full"] += 1
        return exact_full(img, pad_mode)
    monkeypatch.setattr(flat_windows, "flat_windows", full)   # flat_candidates' many-candidate path
    for img in images:
        with torch.no_grad():
            plain = mscn(img, padding)
            assert torch.equal(mscn(img, padding, integers=True), plain)
        assert (plain == 0).any() or img is images[-1]
        y = img.clone().requires_grad_(True)
        grad_plain = mscn(y, padding)
        grad_int = mscn(y, padding, integers=True)
        assert torch.equal(grad_int.detach(), grad_plain.detach())
        (g1,) = torch.autograd.grad(grad_plain.sum(), y)
        (g2,) = torch.autograd.grad(grad_int.sum(), y)
        assert torch.equal(g1, g2)
    assert tested["full"] > 0                            # the exact full passes ran (and agreed)


# ----------------------------------------------------------------------------- paired fits
# nss_fits sums planes of the coefficients (ops/nss_pairs.py) instead of forming each product:
# the same real numbers, another float64 rounding (c_t^2 c_u^2 for (c_t c_u)^2, BLAS dot order).
# So it is checked against a plain NumPy transliteration of estimateggdparam.m and
# estimateaggdparam.m on np.roll products (independent of ours) within float64 reordering
# (1e-12 relative), with the same shapes (grid values) and NaNs; its fallbacks (tiny, NaN,
# float32, gradient) are the product-by-product code itself, so those are compared bit for bit.
RTOL = 1e-12


def _plain_fits(coeffs, shifts):
    """((alpha, sigma), (alpha, left, right)) per image, from circshift products (np.roll)."""
    ggd, aggd = [], []
    for c in coeffs.numpy():
        ggd.append(ggd_plain(c.ravel()))
        aggd.append([aggd_plain((c * np.roll(c, s, axis=(0, 1))).ravel()) for s in shifts])
    ggd, aggd = np.array(ggd), np.array(aggd)                     # (N, 2), (N, k, 3)
    return (ggd[:, 0], ggd[:, 1]), (aggd[..., 0], aggd[..., 1], aggd[..., 2])


def _close(ours, plain, rtol=RTOL):
    for o, e in zip(ours, plain):
        o = o.numpy()
        assert np.array_equal(np.isnan(o), np.isnan(e))
        np.testing.assert_allclose(o, e, rtol=rtol, atol=0)


def _per_shift(coeffs, shifts):
    fits = [aggd_fit(paired_products(coeffs, (s,)).flatten(2)) for s in shifts]
    return tuple(torch.cat(f, dim=-1) for f in zip(*fits))


def _same(a, b):
    return all(torch.equal(torch.isnan(x), torch.isnan(y))
               and torch.equal(x.nan_to_num(), y.nan_to_num()) for x, y in zip(a, b))


def _coefficient_cases():
    rng = np.random.default_rng(4)
    with torch.no_grad():
        photo = mscn(_photo_gray(), 0)[:, 0]
    assert (photo == 0).any()                                     # zeros from flat windows
    mixed = torch.from_numpy(rng.standard_normal((3, 31, 45)))
    mixed[0, 2:9, 4:20] = 0.0                                      # zeros
    mixed[1] = mixed[1].abs()                                      # one-sided products
    mixed[2] = 0.0
    mixed[2, 5, 5] = -1.0                                          # almost all zero
    checker = torch.from_numpy((-1.0) ** np.add.outer(np.arange(20), np.arange(23)))[None]
    return {"photo": photo, "mixed": mixed, "checkerboard": checker * 3.0,
            "two rows": torch.from_numpy(rng.standard_normal((1, 2, 9))),
            "two columns": torch.from_numpy(rng.standard_normal((2, 11, 2))),
            "wide values": torch.from_numpy(rng.standard_normal((1, 17, 19))
                                            * 10.0 ** rng.integers(-60, 60, (1, 17, 19)))}


def test_plane_fits_equal_a_plain_transliteration(monkeypatch):
    for chunk in (1 << 15, 50):                                   # many uneven chunks too
        monkeypatch.setattr("optiqa.ops.nss_pairs.PLANE_CHUNK_ELEMENTS", chunk)
        for name, c in _coefficient_cases().items():
            for shifts in (BRISQUE_SHIFTS, NIQE_SHIFTS):
                with torch.no_grad():
                    (g_alpha, g_sigma), aggd = nss_fits(c, shifts)
                    plain_ggd, plain_aggd = _plain_fits(c, shifts)
                    _close((g_alpha, g_sigma), plain_ggd)
                    _close(aggd, plain_aggd)
                    _close(paired_aggd_fits(c, shifts), plain_aggd)
                    # and the product-by-product code to the same tolerance, except where
                    # it takes sum(p^2 [p > 0]) as sum(p^2) - sum(p^2 [p < 0]) with almost all
                    # of sum(p^2) negative (values over 120 decades): it loses digits there
                    if name != "wide values":
                        _close(aggd, [t.numpy() for t in _per_shift(c, shifts)])


def test_plane_fits_fall_back_to_the_products_where_they_could_differ():
    rng = np.random.default_rng(5)
    mixed = torch.from_numpy(rng.standard_normal((2, 31, 45)))
    tiny = mixed.clone()
    tiny[0, 0, 0], tiny[0, 0, 1] = 1e-200, -1e-170                 # products underflow to 0
    nan = mixed.clone()
    nan[1, 3, 3] = float("nan")
    huge = mixed.clone()
    huge[0, 4, 4] = 1e160                                          # p^2 overflows
    small = mixed * 1e-300                                         # subnormal products
    for c in (tiny, nan, huge, small, mixed.float()):
        for shifts in (BRISQUE_SHIFTS, NIQE_SHIFTS):
            with torch.no_grad():
                assert _same(paired_aggd_fits(c, shifts), _per_shift(c, shifts))
                ggd, aggd = nss_fits(c, shifts)
                assert _same(aggd, _per_shift(c, shifts))
                assert _same(ggd, nss.ggd_fit(c.flatten(1)))
    with torch.no_grad():                                          # the fallback matters:
        assert not _same(paired_aggd_fits(tiny, BRISQUE_SHIFTS),  # sign counts would differ
                         _counts_from_signs(tiny, BRISQUE_SHIFTS))


def _counts_from_signs(c, shifts):
    """The AGGD fits with the products' counts taken from the coefficients' signs (what the
    plane sums would give without the fallback)."""
    out = []
    for s in shifts:
        p = paired_products(c, (s,)).flatten(2)
        sign = torch.sign(c) * torch.sign(torch.roll(c, s, dims=(-2, -1)))
        n_neg = (sign < 0).flatten(1).sum(-1, keepdim=True)
        n_nonzero = (sign != 0).flatten(1).sum(-1, keepdim=True)
        neg = p.clamp(max=0.0)
        out.append(nss.aggd_from_sums((neg * neg).sum(-1), (p * p).sum(-1), p.abs().sum(-1),
                                      n_neg, n_nonzero, p.shape[-1], c.device))
    return tuple(torch.cat(f, dim=-1) for f in zip(*out))


def test_paired_fits_keep_the_gradient_path():
    c = torch.randn(1, 20, 24, dtype=torch.float64, requires_grad=True)
    alpha, left, right = paired_aggd_fits(c, BRISQUE_SHIFTS)
    (left.sum() + right.sum()).backward()
    assert torch.isfinite(c.grad).all() and c.grad.abs().sum() > 0
    assert _same((alpha, left, right), _per_shift(c.detach(), BRISQUE_SHIFTS))  # products
    with torch.no_grad():
        _close(paired_aggd_fits(c.detach(), BRISQUE_SHIFTS),
               [t.detach().numpy() for t in (alpha, left, right)])
        wide = torch.randn(1, 20, 30, dtype=torch.float64)
        _close(paired_aggd_fits(wide[..., 3:27], BRISQUE_SHIFTS),            # not contiguous
               [t.numpy() for t in _per_shift(wide[..., 3:27], BRISQUE_SHIFTS)])


# BRISQUE's scores (float64, before the cast to the input's dtype) of the five TID2013
# calibration images as the product-by-product fits gave them, printed with repr() by commit
# 413febd's code (brisque_features + svr_predict, one thread); the plane sums must give them up
# to float64 reordering. Scores near 0 (I04) are compared with an absolute 1e-10.
PREVIOUS_SCORES = {"I03.bmp": 94.64375187566986, "I04.bmp": -0.10717606305513527,
                   "I06.bmp": 0.990117807064621, "I08.bmp": 5.903765718903401,
                   "I19.bmp": 74.38918261577021}


def test_brisque_scores_equal_the_product_by_product_ones():
    from conftest import shared_path
    from optiqa.data.io import read_image
    from optiqa.metrics.brisque import brisque_features, svr_predict
    from optiqa.metrics.nss_models import load_brisque_model

    try:
        svr = load_brisque_model(None, None)
    except Exception as e:                           # the model package is optional
        pytest.skip(f"BRISQUE's model is not installed: {e}")
    root = shared_path("iqa", "calibration", "dist")
    for name, previous in PREVIOUS_SCORES.items():
        with torch.no_grad():
            feats = brisque_features(gray8.gray_255(read_image(root / name)[None]),
                                     integer_levels=True)
        score = svr_predict(feats, *(torch.from_numpy(a) for a in (svr.support, svr.coef)),
                            svr.gamma, svr.rho, torch.from_numpy(svr.feature_min),
                            torch.from_numpy(svr.feature_max), *svr.lower_upper)
        assert abs(float(score) - previous) <= 1e-10 * max(1.0, abs(previous)), name
