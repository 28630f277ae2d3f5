"""A transfer or zero-shot result that a study finds done costs no network (issue 23, target 1):
its key is built from the files that decide it, and the network only to compute. The key is
the same as when the network was built first, and a changed file still changes it."""
import pytest
import torch
import yaml

from optiqa.data import synthetic
from optiqa.nets import create_discriminator
from optiqa.transfer import experiment, init, zeroshot
from optiqa.transfer.experiment import TransferOptions, run_transfer
from optiqa.transfer.fitting import TrainSettings
from optiqa.transfer.zeroshot import run_zero_shot

NET_D = {"type": "backbone", "backbone": "effnet_lite0", "head": "patch", "stage": 2,
         "pretrained": False}
FAST = dict(epochs=2, patience=2, batch_size=16, eval_batch_size=16)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic.load_synthetic(cache=tmp_path_factory.mktemp("syn"), size=32,
                                    photos=["astronaut", "coffee", "chelsea"],
                                    distortions=["gaussian_blur"])


def _run(folder, seed=0):
    torch.manual_seed(seed)
    d = create_discriminator(**NET_D)
    (folder / "models").mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(
        {"name": folder.name, "network_d": NET_D, "datasets": {"train": {"gt_size": 32}}}))
    torch.save({"params": d.state_dict()}, folder / "models" / "net_d_7.pth")
    return folder


class Known:
    """A result kept elsewhere (a study's file), returned under its key only."""

    def __init__(self, result=None):
        self.result, self.asked = result, []

    def __call__(self, key):
        self.asked.append(key)
        return self.result if self.result is not None and self.result["key"] == key else None


def _count(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_a_known_zero_shot_result_loads_no_discriminator(data, tmp_path, monkeypatch):
    run = _run(tmp_path / "cell")
    first = run_zero_shot(run, data, n_boot=20)
    loads = _count(monkeypatch, zeroshot, "load_discriminator")
    known = Known(first)
    again = run_zero_shot(run, data, n_boot=20, known=known)
    assert again is first and known.asked == [first["key"]] and loads == []
    # a retrained discriminator (another file) is another key: computed, with a network
    _run(tmp_path / "cell", seed=1)
    other = run_zero_shot(run, data, n_boot=20, known=known)
    assert other["key"] != first["key"] and loads == [1]
    assert other["checkpoint_sha256"] != first["checkpoint_sha256"]


@pytest.mark.parametrize("init_kind", ["random", "gan"])
def test_a_known_transfer_result_builds_no_backbone(data, tmp_path, monkeypatch, init_kind):
    monkeypatch.setattr(init, "_MAPS", {})
    run = _run(tmp_path / "cell")
    init_arg = "random" if init_kind == "random" else f"gan:{run}"
    opts = lambda: TransferOptions(backbone="effnet_lite0", init=init_arg, repeats=1,  # noqa
                                   train=TrainSettings(**FAST))
    builds = _count(monkeypatch, experiment, "create_backbone")
    first = run_transfer(opts(), data)
    assert builds == [1]
    known = Known(first)
    again = run_transfer(opts(), data, known=known)
    assert again is first and known.asked == [first["key"]] and builds == [1]
    # the same key in a fresh process (nothing remembered), still without a build
    monkeypatch.setattr(init, "_MAPS", {})
    fresh = Known(first)
    assert run_transfer(opts(), data, known=fresh) is first and builds == [1]
    if init_kind == "gan":  # a rewritten checkpoint is a new initialisation: a new key
        _run(tmp_path / "cell", seed=1)
        other = run_transfer(opts(), data, known=Known(first))
        assert other["key"] != first["key"] and builds == [1, 1]
        assert other["init_info"]["sha256"] != first["init_info"]["sha256"]


@pytest.mark.parametrize("init_kind", ["random", "imagenet", "gan"])
def test_describe_init_is_the_info_of_the_built_backbone(tmp_path, monkeypatch, init_kind):
    """The key of a result is hashed from describe_init; it must be what building reports."""
    monkeypatch.setattr(init, "_MAPS", {})
    arg = {"random": "random", "imagenet": "imagenet",
           "gan": f"gan:{_run(tmp_path / 'cell')}"}[init_kind]
    described = init.describe_init("effnet_lite0", arg, seed=3)
    _, info = init.create_backbone("effnet_lite0", arg, seed=3)
    assert described == info
    if init_kind == "gan":
        assert info["maps"] == 6 and info["trained_maps"] == 3  # image + 5 stages; read at 2


def test_describe_init_refuses_what_building_refuses(tmp_path):
    from optiqa.core.errors import ConfigError

    with pytest.raises(ConfigError, match="no ImageNet weights"):
        init.describe_init("vgg16_r", "imagenet")
    with pytest.raises(ConfigError, match="trained with backbone 'effnet_lite0'"):
        init.describe_init("vgg16_r", f"gan:{_run(tmp_path / 'cell')}")
