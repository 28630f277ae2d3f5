"""TruncatedBackbone (a "gan" initialisation's trained stages): it stops the backbone after the
last map it returns when the skipped layers cannot change anything, with the same maps as the
full forward, and runs every stage when they can (training-mode batch norm or dropout)."""
from __future__ import annotations

import pytest
import torch

from optiqa import backbones
from optiqa.transfer.init import TruncatedBackbone


def _counting(bb: backbones.Backbone) -> list[int]:
    """Calls of the trunk's last block (a stage the truncated backbone never returns)."""
    calls = [0]

    def hook(*_):
        calls[0] += 1
    bb.trunk.blocks[-1].register_forward_hook(hook)
    return calls


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return backbones.create("effnet_lite0", pretrained=False).eval()


def test_eval_mode_skips_the_stages_after_the_last_map_and_gives_the_same_maps(backbone):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = backbone(x)                   # every stage: what TruncatedBackbone sliced before
    calls = _counting(backbone)
    truncated = TruncatedBackbone(backbone, 3)
    with torch.no_grad():
        maps = truncated(x)
    assert calls[0] == 0                     # stages 3.. were not computed
    assert len(maps) == 3 and [m.shape[1] for m in maps] == truncated.channels
    assert all(torch.equal(a, b) for a, b in zip(maps, full[:3]))
    with torch.no_grad():
        backbone(x)
    assert calls[0] == 1                     # the hook does see a full forward


def test_training_mode_batch_norm_runs_every_stage_as_before():
    torch.manual_seed(0)
    a = backbones.create("effnet_lite0", pretrained=False).train()
    b = backbones.create("effnet_lite0", pretrained=False).train()
    b.load_state_dict(a.state_dict())
    calls = _counting(b)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    expected = a(x)[:3]
    maps = TruncatedBackbone(b, 3)(x)
    # the skipped stages' batch norms must update their running statistics as a full forward does
    assert calls[0] == 1
    assert all(torch.equal(m, e) for m, e in zip(maps, expected))
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    last = [k for k in sa if k.startswith("trunk.blocks.") and k.endswith("running_mean")][-1]
    assert not torch.equal(sb[last], backbones.create("effnet_lite0", pretrained=False)
                           .state_dict()[last])  # so the check above can fail


def test_the_map_count_is_checked(backbone):
    for n in (0, len(backbone.channels) + 1):
        with pytest.raises(ValueError, match="n_maps must be 1 to"):
            TruncatedBackbone(backbone, n)
