"""The ground truth's features shared between training runs (optiqa.metrics.feature_store).

A hit must return exactly what the backbone computes (the loss, its input gradient and whole
training runs bit-identical with and without the store), and every ingredient of the key must
turn a changed input, weight or thread count into a miss.
"""
import pytest
import torch

from optiqa.metrics import create_metric, metric_available_offline
from optiqa.metrics.feature_store import (FeatureStore, active, module_identity,
                                          sharing_reference_features)
from tiny_cells import differing, train_cell


def _loss_and_grad(metric, x, ref):
    x = x.clone().requires_grad_(True)
    loss = metric.loss(x, ref)
    loss.backward()
    return loss.detach(), x.grad


@pytest.fixture
def pair():
    gen = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 32, 32, generator=gen), torch.rand(2, 3, 32, 32, generator=gen)


def test_a_hit_gives_the_loss_and_gradient_bit_for_bit(tmp_path, pair):
    metric = create_metric("dists_vgg16_r")
    x, ref = pair
    plain = _loss_and_grad(metric, x, ref)
    with sharing_reference_features(tmp_path) as store:
        assert active() is store
        first = _loss_and_grad(metric, x, ref)      # computed and written
        second = _loss_and_grad(metric, x, ref)     # read back
    assert active() is None
    assert (store.misses, store.hits) == (1, 1) and len(list(tmp_path.glob("*.pt"))) == 1
    for got in (first, second):
        assert torch.equal(got[0], plain[0]) and torch.equal(got[1], plain[1])
    # another process (another metric instance with the same weights) reads the same file
    with sharing_reference_features(tmp_path) as other:
        again = _loss_and_grad(create_metric("dists_vgg16_r"), x, ref)
    assert (other.misses, other.hits) == (0, 1)
    assert torch.equal(again[0], plain[0]) and torch.equal(again[1], plain[1])


def test_a_hit_skips_the_references_forward_and_moments(tmp_path, pair, monkeypatch):
    """DISTS stores its ground truth's per-stage moments with the maps: a hit runs the backbone
    on the output alone, and one var_mean per stage (the output's) instead of two."""
    metric = create_metric("dists_vgg16_r")
    x, ref = pair
    with sharing_reference_features(tmp_path):
        _loss_and_grad(metric, x, ref)                 # written
    forwards, reductions = [], []
    metric.backbone.register_forward_hook(lambda *a: forwards.append(1))
    var_mean = torch.var_mean
    monkeypatch.setattr(torch, "var_mean",
                        lambda *a, **k: reductions.append(1) or var_mean(*a, **k))
    with sharing_reference_features(tmp_path) as store:
        _loss_and_grad(metric, x, ref)                 # read
    assert store.hits == 1 and len(forwards) == 1
    assert len(reductions) == len(metric.backbone.channels)


def test_scoring_without_gradients_never_uses_the_store(tmp_path, pair):
    metric = create_metric("dists_vgg16_r")
    x, ref = pair
    with sharing_reference_features(tmp_path) as store:
        with torch.no_grad():
            metric(x, ref)
        with torch.inference_mode():
            metric(x, ref)
        _loss_and_grad(metric, x.requires_grad_(False), ref.clone().requires_grad_(True))
    assert store.misses == store.hits == 0 and not list(tmp_path.glob("*.pt"))


def test_every_key_ingredient_misses(tmp_path, pair, monkeypatch):
    metric = create_metric("dists_vgg16_r")
    x, ref = pair
    with sharing_reference_features(tmp_path) as store:
        _loss_and_grad(metric, x, ref)
        other_ref = ref.clone()
        other_ref[1, 2, 5, 7] += 1e-6                     # one value of the ground truth
        _loss_and_grad(metric, x, other_ref)
        assert (store.misses, store.hits) == (2, 0)
        _loss_and_grad(metric, x[:1], ref[:1])            # its shape
        assert (store.misses, store.hits) == (3, 0)
        threads = torch.get_num_threads()
        try:                                              # the thread count
            torch.set_num_threads(1 if threads > 1 else 2)
            _loss_and_grad(metric, x, ref)
        finally:
            torch.set_num_threads(threads)
        assert (store.misses, store.hits) == (4, 0)
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "another CPU")
        _loss_and_grad(metric, x, ref)                    # the CPU's kernels
        assert (store.misses, store.hits) == (5, 0)
        monkeypatch.undo()
        _loss_and_grad(metric, x, ref)                    # all the same again: a hit
        assert (store.misses, store.hits) == (5, 1)
        with torch.no_grad():                             # a weight changed in place
            next(metric.backbone.parameters())[0, 0, 0, 0] += 1e-3
        changed = _loss_and_grad(metric, x, ref)
        assert (store.misses, store.hits) == (6, 1)
    fresh = _loss_and_grad(metric, x, ref)  # the changed weights' own numbers, not the stored
    assert torch.equal(changed[0], fresh[0]) and torch.equal(changed[1], fresh[1])


def test_module_identity_covers_structure_weights_and_buffers():
    a = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    b = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    b.load_state_dict(a.state_dict())
    assert module_identity(a) == module_identity(b)
    b[1].running_mean[0] += 1                   # a buffer
    assert module_identity(a) != module_identity(b)
    b.load_state_dict(a.state_dict())
    b[0] = torch.nn.Conv2d(3, 4, 3, padding=1)  # the structure (same weight shapes)
    b[0].load_state_dict(a[0].state_dict())
    assert module_identity(a) != module_identity(b)


def test_an_unreadable_file_is_a_miss(tmp_path, pair):
    metric = create_metric("dists_vgg16_r")
    x, ref = pair
    plain = _loss_and_grad(metric, x, ref)
    with sharing_reference_features(tmp_path):
        _loss_and_grad(metric, x, ref)
    (path,) = tmp_path.glob("*.pt")
    path.write_bytes(b"not a tensor file")
    with sharing_reference_features(tmp_path) as store:
        got = _loss_and_grad(metric, x, ref)
    assert (store.misses, store.hits) == (1, 0)
    assert torch.equal(got[0], plain[0]) and torch.equal(got[1], plain[1])


def test_a_failed_write_costs_only_the_sharing(tmp_path, pair, monkeypatch):
    from optiqa.metrics import feature_store

    metric = create_metric("dists_vgg16_r")
    x, ref = pair
    plain = _loss_and_grad(metric, x, ref)

    def full_disk(path, writer, durable=True):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(feature_store, "atomic_write", full_disk)
    with sharing_reference_features(tmp_path) as store:
        got = _loss_and_grad(metric, x, ref)
    assert (store.misses, store.write_errors) == (1, 1) and not list(tmp_path.iterdir())
    assert torch.equal(got[0], plain[0]) and torch.equal(got[1], plain[1])


@pytest.mark.parametrize("metric", ["dists_vgg16_r", "lpips_alex"])
def test_training_with_the_store_gives_the_same_weights(tmp_path, metric):
    """Two runs of a quick-config-like cell (a DISTS or an LPIPS loss, patch discriminator)
    sharing the store, against one without it: G, EMA and D bit-identical; the first run wrote
    one file per batch, the second hit every batch."""
    if metric == "lpips_alex" and not metric_available_offline(metric):
        pytest.skip("lpips_alex needs the AlexNet weights (optiqa weights fetch alexnet)")
    plain = train_cell(metric)
    with sharing_reference_features(tmp_path) as store:
        first = train_cell(metric)
        # one miss per batch (the first adversarial step also measures the gradient ratio
        # on its batch: a hit within the run)
        assert store.misses == 3
        lookups = store.misses + store.hits
        second = train_cell(metric)
        assert store.misses == 3 and store.hits + store.misses == 2 * lookups
    for got in (first, second):
        differ = differing(plain, got)
        assert not differ, f"weights differ: {differ[:5]}"


def test_the_key_covers_the_whole_metric_not_only_its_backbone(tmp_path, pair):
    """LPIPS scales its input before the backbone: a change there changes the features, so it
    must miss (and give the changed metric's own numbers)."""
    if not metric_available_offline("lpips_alex"):
        pytest.skip("lpips_alex needs the AlexNet weights (optiqa weights fetch alexnet)")
    metric = create_metric("lpips_alex")
    x, ref = pair
    with sharing_reference_features(tmp_path) as store:
        _loss_and_grad(metric, x, ref)
        _loss_and_grad(metric, x, ref)
        assert (store.misses, store.hits) == (1, 1)
        with torch.no_grad():
            metric.shift[0, 1] += 1e-3
        changed = _loss_and_grad(metric, x, ref)
        assert (store.misses, store.hits) == (2, 1)
    fresh = _loss_and_grad(metric, x, ref)
    assert torch.equal(changed[0], fresh[0]) and torch.equal(changed[1], fresh[1])


def test_the_key_hashes_values_not_layout(tmp_path):
    store = FeatureStore(tmp_path)
    ref = torch.rand(2, 3, 8, 8)
    assert store.key("m", ref) == store.key("m", ref.contiguous(memory_format=torch.channels_last))
    assert store.key("m", ref) != store.key("n", ref)
    assert store.key("m", ref) != store.key("m", ref.double())


def test_the_pool_removes_the_shared_features_when_it_ends(tmp_path):
    """Every cell is trained when the pool ends: its shared features go (1.5 GB in the example),
    and cache/ with them when nothing else is in it."""
    import contextlib
    import time

    from optiqa.study.folder import StudyFolder
    from optiqa.study.runner import _Pool

    folder = StudyFolder(tmp_path)
    folder.reference_features.mkdir(parents=True)
    (folder.reference_features / "x.pt").write_bytes(b"features")
    _Pool([], ("train",), time.time(), folder).finish(contextlib.ExitStack())
    assert not folder.reference_features.exists() and not folder.reference_features.parent.exists()
