"""The training step's shortcuts change the time and nothing else (issue 23, target 1).

Each shortcut is compared, bit for bit, with the computation it replaces: a backbone
discriminator whose trunk stops after the stage its head reads (``Backbone(x, upto=...)``), and a
deep metric whose frozen convolution weights are laid out channels-last once on the CPU
(``optiqa.metrics.deep.match_weight_layout``) instead of being copied by oneDNN on every call.
Speed itself is measured by ``bench/train_cells.py``, never asserted here.
"""
import copy

import pytest
import torch

from optiqa import backbones
from optiqa.core.errors import InputError
from optiqa.metrics import create_metric
from optiqa.metrics import deep
from optiqa.nets import create_discriminator
from optiqa.nets import disc_backbone
from tiny_cells import differing, train_cell


def _d_step(D, x):
    """Logits, input gradient, parameter gradients and buffers after one forward + backward."""
    x = x.clone().requires_grad_(True)
    out = D(x)
    out.float().square().mean().backward()
    grads = {n: p.grad.clone() for n, p in D.named_parameters() if p.grad is not None}
    return out.detach(), x.grad, grads, {n: b.clone() for n, b in D.named_buffers()}


def _last_block_calls(D) -> list:
    calls = []
    D.backbone.trunk.blocks[-1].register_forward_hook(lambda *a: calls.append(1))
    return calls


@pytest.mark.parametrize("head", ["patch", "image"])
def test_discriminator_skips_the_stages_after_its_head_bit_identically(monkeypatch, head):
    torch.manual_seed(0)
    D = create_discriminator("backbone", backbone="effnet_lite0", head=head, stage=2,
                             pretrained=False).train()
    full = copy.deepcopy(D)
    x = torch.rand(3, 3, 64, 64)
    skipped, computed = _last_block_calls(D), _last_block_calls(full)
    new = [_d_step(D, x) for _ in range(2)]  # twice: the spectral-norm vectors move on
    monkeypatch.setattr(disc_backbone, "skippable", lambda module: False)
    old = [_d_step(full, x) for _ in range(2)]
    assert not skipped and len(computed) == 2  # the last stage ran only in the full forward
    for (o1, g1, p1, b1), (o2, g2, p2, b2) in zip(new, old):
        assert torch.equal(o1, o2) and torch.equal(g1, g2)
        assert p1.keys() == p2.keys() and all(torch.equal(p1[k], p2[k]) for k in p1)
        assert b1.keys() == b2.keys() and all(torch.equal(b1[k], b2[k]) for k in b1)


def test_discriminator_computes_every_stage_when_skipping_would_change_state():
    """Batch norm in training mode (bn_eval=False) updates running statistics in every stage,
    and a checkpoint saves them (a trained D's backbone initialises IQA models): no skipping."""
    D = create_discriminator("backbone", backbone="effnet_lite0", head="patch", stage=2,
                             pretrained=False, bn_eval=False).train()
    assert not disc_backbone.skippable(D.backbone)
    last_bn = [m for m in D.backbone.trunk.blocks[-1].modules()
               if isinstance(m, torch.nn.BatchNorm2d)][-1]
    before = last_bn.running_mean.clone()
    calls = _last_block_calls(D)
    D(torch.rand(2, 3, 64, 64))
    assert calls and not torch.equal(last_bn.running_mean, before)
    assert disc_backbone.skippable(D.eval().backbone)  # in eval mode nothing moves
    dropout = torch.nn.Sequential(torch.nn.Dropout(0.1)).train()
    assert not disc_backbone.skippable(dropout)  # a random draw would be skipped
    assert disc_backbone.skippable(torch.nn.Sequential(torch.nn.Dropout(0.0)).train())


@pytest.mark.parametrize("name", ["effnet_lite0", "vgg16_r"])
def test_backbone_upto_gives_the_first_maps_of_the_full_forward(name):
    bb = backbones.create(name, pretrained=False)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        full = bb(x)
        for upto in (1, 2, len(bb.channels) - 1):
            part = bb(x, upto=upto)
            assert len(part) == upto + 1
            assert all(torch.equal(a, b) for a, b in zip(part, full))
    with pytest.raises(InputError, match="upto must be at least 1"):
        bb(x, upto=0)


def _loss_and_grad(metric, x, ref):
    x = x.clone().requires_grad_(True)
    loss = metric.loss(x, ref)
    loss.backward()
    return loss.detach(), x.grad


@pytest.mark.parametrize("name", ["dists_vgg16_r", "lpips_alex"])
def test_channels_last_loss_weights_are_bit_identical(monkeypatch, name):
    """The layout of the frozen weights changes no loss value and no input gradient."""
    if name == "lpips_alex":
        from optiqa.metrics import metric_available_offline

        if not metric_available_offline(name):
            pytest.skip("lpips_alex needs the AlexNet weights (optiqa weights fetch alexnet)")
    metric = create_metric(name)
    torch.manual_seed(0)
    x = torch.rand(2, 3, 48, 48).contiguous(memory_format=torch.channels_last)
    ref = torch.rand(2, 3, 48, 48)
    new = _loss_and_grad(metric, x, ref)
    with torch.no_grad():  # the assessment side too: scores of a batch
        new_scores = metric(x, ref)
    convs = [p for p in metric.backbone.parameters() if p.ndim == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    deep.match_weight_layout(metric.backbone, "cuda")  # what a CUDA call leaves: contiguous
    assert all(p.is_contiguous() for p in convs)
    monkeypatch.setattr(deep, "match_weight_layout", lambda module, device_type: None)
    old = _loss_and_grad(metric, x, ref)  # oneDNN copies the weights on every call
    with torch.no_grad():
        old_scores = metric(x, ref)
    assert all(p.is_contiguous() for p in convs)
    assert torch.equal(new[0], old[0]) and torch.equal(new[1], old[1])
    assert torch.equal(new_scores, old_scores)


def test_training_steps_with_and_without_the_shortcuts_give_the_same_weights(monkeypatch):
    """A few steps of a quick-config-like cell (DISTS-VGG16-R loss, effnet_lite0 patch
    discriminator read at stage 2, channels-last G and D): G, its EMA and D bit-identical."""
    start = {}
    new = train_cell("dists_vgg16_r", gt_size=64, start=start)
    monkeypatch.setattr(disc_backbone, "skippable", lambda module: False)
    monkeypatch.setattr(deep, "match_weight_layout", lambda module, device_type: None)
    old = train_cell("dists_vgg16_r", gt_size=64)
    differ = differing(new, old)
    assert not differ, f"weights differ: {differ[:5]}"
    assert any(not torch.equal(new[k], start[k]) for k in start)  # and training moved G


def test_weights_laid_out_under_inference_mode_still_train():
    """The first call may come from the assessment (inference_mode): the copied weights must
    stay ordinary tensors that a later loss's backward can save."""
    metric = create_metric("dists_vgg16_r")
    x, ref = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        metric(x, ref)
    assert all(not p.is_inference() for p in metric.parameters())
    loss, grad = _loss_and_grad(metric, x, ref)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_a_metric_built_under_inference_mode_scores_in_every_mode():
    """The evaluate stage builds its panel under inference_mode, so the weights are inference
    tensors; laying them out channels-last must keep them so (a normal copy put into them made
    the second call fail: "Inference tensors do not track version counter"), and the scores
    must equal those of a metric built normally."""
    torch.manual_seed(0)
    x, ref = torch.rand(1, 3, 48, 48), torch.rand(1, 3, 48, 48)
    with torch.inference_mode():
        built_inf = create_metric("dists_vgg16_r")
    plain = create_metric("dists_vgg16_r")
    with torch.no_grad():
        expected = plain.reference_scorer(ref)(x)
    for mode in (torch.inference_mode, torch.inference_mode, torch.no_grad):
        with mode():
            got = built_inf.reference_scorer(ref)(x)
        assert torch.equal(got, expected)
    assert all(p.is_inference() for p in built_inf.parameters())
