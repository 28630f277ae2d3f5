"""The evaluate stage's reference cache: each ground truth prepared once per evaluator, scores as
the metric gives them, never another image's prepared state."""
import pytest
import torch

from optiqa.assess.refcache import ReferenceCache
from optiqa.metrics import create_metric


class CountingSSIM(torch.nn.Module):
    """SSIM whose reference preparations are counted."""

    def __init__(self):
        super().__init__()
        self.metric = create_metric("ssim")
        self.prepared = 0

    def __call__(self, x, ref):
        return self.metric(x, ref)

    def reference_scorer(self, ref):
        self.prepared += 1
        return self.metric.reference_scorer(ref)


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(0)
    refs = [torch.rand(1, 3, 40, 40, generator=g) for _ in range(2)]
    outs = [(r + 0.1 * torch.rand(1, 3, 40, 40, generator=g)).clamp(0, 1) for r in refs]
    return refs, outs


@pytest.mark.parametrize("name", ["ssim", "fsim", "dists_vgg16_r"])
def test_scores_equal_the_metric_and_reference_prepared_once(name, images):
    refs, outs = images
    metric = create_metric(name)
    cache = ReferenceCache()
    for model in range(3):  # three "models" score the same two ground truths
        for i, (ref, out) in enumerate(zip(refs, outs)):
            x = (out + 0.02 * model).clamp(0, 1)
            got = cache(name, metric, ("set", i), x, ref)
            torch.testing.assert_close(got, metric(x, ref), rtol=1e-5, atol=1e-6)
    assert len(cache._entries) == 2 and cache.used_bytes > 0


def test_reuse_counts_and_a_changed_reference_is_prepared_again(images):
    refs, outs = images
    m = CountingSSIM()
    cache = ReferenceCache()
    for _ in range(4):
        cache("ssim", m, "img", outs[0], refs[0])
    assert m.prepared == 1
    # same key, another image: never the first image's state
    got = cache("ssim", m, "img", outs[1], refs[1])
    assert m.prepared == 2
    torch.testing.assert_close(got, m(outs[1], refs[1]))
    assert not torch.allclose(got, m(outs[1], refs[0]))


def test_budget_bounds_what_is_kept(images):
    refs, outs = images
    m = CountingSSIM()
    cache = ReferenceCache(budget_bytes=0)
    for _ in range(3):
        torch.testing.assert_close(cache("ssim", m, "img", outs[0], refs[0]), m(outs[0], refs[0]))
    assert m.prepared == 3 and cache.used_bytes == 0 and not cache._entries
