"""DISTS, the DISTS formula on every backbone, and LPIPS v0.1.

Agreement with the reference packages (DISTS_pytorch, lpips) uses the same fixed-seed random
VGG-16/AlexNet weights on both sides: the packages load torchvision's files from $TORCH_HOME (no
hash is checked on a cached file), ours from $OPTIQA_WEIGHTS pointing at the same files. The
trained parts (DISTS alpha/beta, LPIPS linear heads) are the official ones on both sides.
"""
import importlib.resources

import pytest
import torch
import torch.nn.functional as F

import optiqa
from optiqa import backbones
from optiqa.core.errors import ConfigError, WeightsUnavailable
from optiqa.metrics.deep import dists_from_features, l2_pool
from optiqa.models.testing import standin_weights, torchvision_state_dict

TOL = 1e-5


@pytest.fixture(scope="module")
def reference_weights(tmp_path_factory):
    """$TORCH_HOME with random torchvision vgg16/alexnet files; $OPTIQA_WEIGHTS the same files."""
    pytest.importorskip("torchvision")
    root = tmp_path_factory.mktemp("torch_home")
    ckpt = root / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    for name, file in [("vgg16", "vgg16-397923af.pth"), ("alexnet", "alexnet-owt-7be5be79.pth")]:
        torch.save(torchvision_state_dict(name), ckpt / file)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(root))
        mp.setenv("OPTIQA_WEIGHTS", str(ckpt))
        yield ckpt


@pytest.fixture(scope="module")
def official_dists(reference_weights):
    DISTS_pytorch = pytest.importorskip("DISTS_pytorch")
    ref = DISTS_pytorch.DISTS(load_weights=False)  # it would read weights.pt from sys.prefix
    weights = torch.load(importlib.resources.files("DISTS_pytorch") / "weights.pt",
                         weights_only=True)
    ref.alpha.data, ref.beta.data = weights["alpha"], weights["beta"]
    return ref.eval(), optiqa.create_metric("dists")


@pytest.fixture(scope="module", params=["alex", "vgg"])
def official_lpips(request, reference_weights):
    lpips = pytest.importorskip("lpips")
    ref = lpips.LPIPS(net=request.param, verbose=False).eval()
    return ref, optiqa.create_metric(f"lpips_{request.param}")


def _image_pairs():
    """(distorted, reference) batches: random noise images, and a photograph at an odd size
    with noise, blur and a mirrored copy."""
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(2, 3, 64, 80, generator=g), torch.rand(2, 3, 64, 80, generator=g)
    noisy = (a + 0.1 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    data = pytest.importorskip("skimage.data")
    photo = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float()[None] / 255
    photo = photo[..., 60:157, 150:281]  # 97 x 131, the cat's face
    distorted = torch.cat([(photo + 0.05 * torch.randn(photo.shape, generator=g)).clamp(0, 1),
                           F.avg_pool2d(photo, 5, 1, 2, count_include_pad=False),
                           photo.flip(-1)])
    return {"random": (torch.cat([b, noisy]), torch.cat([a, a])),
            "photo": (distorted, photo.expand(3, -1, -1, -1))}


def _relative_difference(got, expected):
    """||got - expected|| / ||expected||. Gradients are compared in norm, not per pixel: where a
    ReLU input or a max-pooling pair is within rounding of a tie, a different (equally exact)
    convolution algorithm routes that pixel's gradient differently."""
    return ((got - expected).norm() / expected.norm()).item()


def test_dists_matches_official(official_dists):
    ref, ours = official_dists
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in ours.modules())  # L2 pooling
    for case, (x, y) in _image_pairs().items():
        with torch.no_grad():
            expected = ref(x, y).reshape(-1)
        got = ours(x, y)
        assert got.shape == (x.shape[0],)
        assert (got - expected).abs().max() <= TOL, (case, got, expected)


def test_dists_gradient_matches_official(official_dists):
    ref, ours = official_dists
    x, y = _image_pairs()["photo"]
    x, y = x[:1], y[:1]  # the noisy photo
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ref(x1, y, require_grad=True).sum().backward()
    ours(x2, y).sum().backward()
    assert x1.grad.abs().max() > 0
    assert _relative_difference(x2.grad, x1.grad) <= 1e-3


def test_lpips_matches_official(official_lpips):
    ref, ours = official_lpips
    for case, (x, y) in _image_pairs().items():
        with torch.no_grad():
            expected = ref(x, y, normalize=True).reshape(-1)
        got = ours(x, y)
        assert (got - expected).abs().max() <= TOL, (case, got, expected)
    x, y = _image_pairs()["photo"]
    # the noisy photo: 8-bit flat areas would make exact max-pooling ties, whose gradient goes to
    # either pixel depending on the convolution algorithm's rounding
    x, y = x[:1], y[:1]
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ref(x1, y, normalize=True).sum().backward()
    ours(x2, y).sum().backward()
    assert _relative_difference(x2.grad, x1.grad) <= 1e-3


def test_l2_pool_is_the_official_hanning_window():
    DISTS_pytorch = pytest.importorskip("DISTS_pytorch")
    official = DISTS_pytorch.DISTS_pt.L2pooling(channels=4)
    for h, w in [(8, 8), (7, 9), (1, 5), (33, 2)]:
        x = torch.randn(2, 4, h, w)
        assert torch.allclose(l2_pool(x), official(x), atol=1e-6, rtol=1e-5), (h, w)


# ----------------------------------------------------------------------------- DISTS family
_FAMILY = {}


def _family(backbone):
    if backbone not in _FAMILY:
        name = f"dists_{backbone}"
        if backbones.weights_available(backbone):
            _FAMILY[backbone] = optiqa.create_metric(name)
        else:  # fixed-seed stand-in weights through the pretrained code path
            with standin_weights(backbone):
                _FAMILY[backbone] = optiqa.create_metric(name)
    return _FAMILY[backbone]


@pytest.mark.parametrize("backbone", backbones.names())
def test_dists_family_identity_range_gradient(backbone):
    metric = _family(backbone)
    g = torch.Generator().manual_seed(5)
    ref = F.avg_pool2d(torch.rand(2, 3, 64, 64, generator=g), 3, 1, 1)
    cases = ["identical", "noise", "blur", "darker", "other", "anti-correlated"]
    x = torch.cat([ref.clone(), (ref + 0.1 * torch.randn(ref.shape, generator=g)).clamp(0, 1),
                   F.avg_pool2d(ref, 5, 1, 2), ref * 0.7, ref.flip(0), 1 - ref])
    d = metric(x, ref.repeat(len(cases), 1, 1, 1)).view(len(cases), 2)
    assert d[0].abs().max() <= 1e-6, d[0]
    for case, scores in zip(cases[1:-1], d[1:-1]):
        assert ((scores > 0) & (scores <= 1)).all(), (case, scores)
    # D = sum alpha (1 - l) + beta (1 - s) with l, s in [-1, 1]: never negative, at most 2
    # (above 1 only for anti-correlated features, possible with signed ones: ViT, Swin, ConvNeXt)
    assert ((d[-1] >= 0) & (d[-1] <= 2)).all()
    x = x[2:4].clone().requires_grad_(True)
    metric.loss(x, ref).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("backbone", backbones.names())
def test_dists_family_sizes(backbone):
    metric = _family(backbone)
    g = torch.Generator().manual_seed(6)
    for h, w in [(64, 64), (128, 128), (97, 131), (32, 32)]:
        ref = torch.rand(1, 3, h, w, generator=g)
        x = (ref + 0.1 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
        d = metric(x, ref)
        assert d.shape == (1,) and torch.isfinite(d).all() and 0 < d.item() <= 1, (h, w, d)
    with pytest.raises(ValueError, match="too small"):
        metric(torch.rand(1, 3, 16, 64), torch.rand(1, 3, 16, 64))


def test_joint_and_split_batches_agree():
    """x needing a gradient runs apart from the reference; the values must not change."""
    metric = _family("vgg16_r")
    x, ref = torch.rand(2, 3, 48, 56), torch.rand(2, 3, 48, 56)
    joint = metric(x, ref)
    split = metric(x.clone().requires_grad_(True), ref)
    assert torch.allclose(joint, split.detach(), atol=1e-6)


def test_statistics_in_float32_under_autocast():
    metric = _family("vgg16_r")
    ref = torch.rand(2, 3, 64, 64)
    x = (ref + 0.1 * torch.randn_like(ref)).clamp(0, 1)
    full = metric(x, ref)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = metric(x, ref)
    assert half.dtype == torch.float32
    assert torch.allclose(half, full, rtol=0.05, atol=1e-3), (half, full)


def test_dists_weights_file(tmp_path):
    """alpha/beta from a file: known answers for weight on the image stage alone."""
    metric_uniform = _family("effnet_lite0")
    channels = metric_uniform.backbone.channels
    total = sum(channels)
    g = torch.Generator().manual_seed(7)
    ref = torch.rand(2, 3, 48, 48, generator=g)
    x = (ref * 0.8 + 0.1 * torch.rand(ref.shape, generator=g)).clamp(0, 1)
    mx, my = x.mean((2, 3)), ref.mean((2, 3))
    vx, vy = x.var((2, 3), unbiased=False), ref.var((2, 3), unbiased=False)
    cov = ((x - x.mean((2, 3), keepdim=True)) * (ref - ref.mean((2, 3), keepdim=True))).mean((2, 3))
    texture = (2 * mx * my + 1e-6) / (mx ** 2 + my ** 2 + 1e-6)
    structure = (2 * cov + 1e-6) / (vx + vy + 1e-6)
    for which, expected in [("alpha", 1 - texture.mean(1)), ("beta", 1 - structure.mean(1))]:
        weights = {"alpha": torch.zeros(1, total, 1, 1), "beta": torch.zeros(1, total, 1, 1)}
        weights[which][0, :3] = 5.0  # any scale: normalised to sum 1
        torch.save(weights, tmp_path / f"{which}.pt")
        metric = optiqa.create_metric("dists_effnet_lite0", weights=tmp_path / f"{which}.pt")
        assert torch.allclose(metric(x, ref), expected, atol=1e-6), which

    torch.save({"alpha": torch.ones(total - 1), "beta": torch.ones(total)}, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match=f"{total} channels"):
        optiqa.create_metric("dists_effnet_lite0", weights=tmp_path / "bad.pt")
    torch.save({"alpha": torch.ones(total)}, tmp_path / "nobeta.pt")
    with pytest.raises(ConfigError, match="'beta'"):
        optiqa.create_metric("dists_effnet_lite0", weights=tmp_path / "nobeta.pt")
    with pytest.raises(ConfigError, match="VGG-16"):
        optiqa.create_metric("dists_effnet_lite0", weights="official")
    # the uniform default: every channel of every stage weighs the same
    assert torch.allclose(metric_uniform.alpha, torch.full((total,), 0.5 / total))


def test_official_dists_weights_are_the_packaged_ones(reference_weights):
    metric = optiqa.create_metric("dists")
    packaged = torch.load(importlib.resources.files("DISTS_pytorch") / "weights.pt",
                          weights_only=True)
    norm = packaged["alpha"].sum() + packaged["beta"].sum()
    assert torch.allclose(metric.alpha, packaged["alpha"].flatten() / norm)
    assert torch.allclose(metric.beta, packaged["beta"].flatten() / norm)
    assert metric.backbone.channels == [3, 64, 128, 256, 512, 512]


def test_known_answer_single_stage():
    """dists_from_features on hand-made one-channel maps."""
    x = torch.tensor([[[[1.0, 3.0]]]])  # mean 2, variance 1
    y = torch.tensor([[[[2.0, 2.0]]]])  # mean 2, variance 0, covariance 0
    one = torch.ones(1)
    # texture: l = (2*2*2 + c1) / (4 + 4 + c1) = 1; structure: s = c2 / (1 + c2)
    d = dists_from_features([x], [y], 0.5 * one, 0.5 * one)
    assert d.item() == pytest.approx(0.5 * (1 - 1e-6 / (1 + 1e-6)), abs=1e-7)


@pytest.mark.parametrize("name,file", [("lpips_alex", "alexnet-owt-7be5be79.pth"),
                                       ("lpips_vgg", "vgg16.tv_in1k.safetensors"),
                                       ("dists", "vgg16.tv_in1k.safetensors"),
                                       ("dists_resnet50", "resnet50.tv_in1k.safetensors")])
def test_missing_weights_offline(name, file, monkeypatch, tmp_path):
    import huggingface_hub
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OPTIQA_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    assert not optiqa.metrics.metric_available_offline(name)
    with pytest.raises(WeightsUnavailable, match=file.replace(".", r"\.")):
        optiqa.create_metric(name)
