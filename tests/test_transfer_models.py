"""IQA models on a backbone: descriptors, heads, forward/backward for NR and FR."""
import pytest
import torch

from optiqa import backbones, create_metric
from optiqa.core.errors import ConfigError
from optiqa.transfer.models import DistsHead, FRModel, NRModel, RegressorHead, create_model


@pytest.fixture(scope="module")
def lite0_random():
    torch.manual_seed(0)
    return backbones.create("effnet_lite0", pretrained=False)


def _images(n=3, size=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g)


def test_nr_descriptor_is_mean_and_std_of_every_map(lite0_random):
    model = NRModel(lite0_random)
    x = _images()
    d = model.descriptor(x)
    assert d.shape == (3, 2 * sum(lite0_random.channels)) == (3, model.descriptor_dim)
    maps = lite0_random(x)
    expected = torch.cat([t for f in maps for t in (f.flatten(2).mean(2),
                                                    f.flatten(2).std(2, unbiased=False))], 1)
    torch.testing.assert_close(d, expected)
    # the image comes first: its channel means are the first three values
    torch.testing.assert_close(d[:, :3], x.mean((2, 3)))


@pytest.mark.parametrize("kind,head", [("nr", "linear"), ("nr", "mlp"), ("fr", "linear"),
                                       ("fr", "mlp")])
def test_forward_backward_reaches_backbone_and_head(lite0_random, kind, head):
    import copy

    model = create_model(kind, copy.deepcopy(lite0_random), head=head, hidden=16)
    model.train()
    x, ref = _images(seed=1), _images(seed=2)
    q = model(x, ref if kind == "fr" else None)
    assert q.shape == (3,) and torch.isfinite(q).all()
    q.sum().backward()
    head_grads = [p.grad for p in model.head.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in head_grads)
    assert any(g.abs().sum() > 0 for g in head_grads)
    stem = model.backbone.trunk.conv_stem.weight.grad
    assert stem is not None and stem.abs().sum() > 0


def test_bn_stays_in_eval_mode_while_training(lite0_random):
    model = NRModel(lite0_random).train()
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert model.head.training


def test_fr_linear_head_starts_as_uniform_dists():
    """Untrained FR model = -(dists_effnet_lite0 with uniform weights), same ImageNet weights."""
    model = FRModel(backbones.create("effnet_lite0")).eval()
    metric = create_metric("dists_effnet_lite0")
    x, ref = _images(2, 64, 3), _images(2, 64, 4)
    with torch.no_grad():
        torch.testing.assert_close(model(x, ref), -metric(x, ref), rtol=1e-4, atol=1e-6)
        assert torch.allclose(model(ref, ref), torch.zeros(2), atol=1e-6)  # identical: best


def test_fr_terms_are_per_channel_texture_then_structure(lite0_random):
    model = FRModel(lite0_random)
    x, ref = _images(2, 40, 5), _images(2, 40, 6)
    terms = model.descriptor(x, ref)
    c = sum(lite0_random.channels)
    assert terms.shape == (2, 2 * c)
    assert (terms >= 0).all() and (terms <= 2 + 1e-6).all()  # 1 - s reaches 2 when anti-correlated
    # texture term of the image's red channel: (mu_x - mu_y)^2 / (mu_x^2 + mu_y^2 + c1)
    mx, my = x[:, 0].mean((1, 2)), ref[:, 0].mean((1, 2))
    torch.testing.assert_close(terms[:, 0], (mx - my) ** 2 / (mx ** 2 + my ** 2 + 1e-6))


def test_heads():
    d = torch.randn(50, 7) * 100 + 40
    head = RegressorHead(7, hidden=0)
    head.fit_input(d)
    z = head.standardize(d)
    torch.testing.assert_close(z.mean(0), torch.zeros(7), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(0, unbiased=False), torch.ones(7), atol=1e-4, rtol=0)
    const = torch.ones(10, 3)
    head3 = RegressorHead(3)
    head3.fit_input(const)
    assert torch.isfinite(head3(const)).all()
    w = DistsHead(6).weights
    torch.testing.assert_close(w, torch.full((6,), 1 / 6))


def test_fr_needs_reference_and_bad_options(lite0_random):
    with pytest.raises(ConfigError, match="reference"):
        FRModel(lite0_random)(_images())
    with pytest.raises(ConfigError, match="nr or fr"):
        create_model("xx", lite0_random)
    with pytest.raises(ConfigError, match="head"):
        create_model("nr", lite0_random, head="deep")


@pytest.mark.parametrize("name", backbones.names())
def test_every_backbone_gives_nr_and_fr_models(name):
    """Descriptors and gradients for each backbone's map layout (random init, one small image)."""
    torch.manual_seed(0)
    bb = backbones.create(name, pretrained=False)
    size = max(bb.spec.min_size, 32)
    x, ref = _images(1, size, 7), _images(1, size, 8)
    for kind in ("nr", "fr"):
        model = create_model(kind, bb, head="linear")
        q = model(x.requires_grad_(True), ref if kind == "fr" else None)
        assert q.shape == (1,) and torch.isfinite(q).all()
        (g,) = torch.autograd.grad(q.sum(), x)
        assert torch.isfinite(g).all() and g.abs().sum() > 0
        x = x.detach()
    assert model.descriptor_dim == 2 * sum(bb.channels)
