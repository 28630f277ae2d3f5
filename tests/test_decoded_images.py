"""optiqa.data.decoded: a file decoded once per process while it is unchanged, as read_image."""
import pytest
import torch

from optiqa.core.errors import InputError
from optiqa.data import decoded
from optiqa.data.io import read_image, write_image


@pytest.fixture
def counted(monkeypatch):
    decoded.clear()
    reads = []
    real = decoded.io.read_image
    monkeypatch.setattr(decoded.io, "read_image", lambda p: reads.append(str(p)) or real(p))
    yield reads
    decoded.clear()


def _png(path, seed):
    g = torch.Generator().manual_seed(seed)
    write_image(path, torch.rand(3, 20, 30, generator=g))
    return path


def test_same_pixels_decoded_once_and_a_copy_each_time(tmp_path, counted):
    p = _png(tmp_path / "a.png", 0)
    first = decoded.read_image_cached(p)
    assert torch.equal(first, read_image(p)) and first.dtype == torch.float32
    first.zero_()                                  # the caller's copy: the kept one is intact
    second = decoded.read_image_cached(str(p))     # str or Path: one entry
    assert torch.equal(second, read_image(p))
    assert len(counted) == 1
    with torch.inference_mode():                   # an ordinary tensor where it was first read
        decoded.clear()
        decoded.read_image_cached(p)
    assert not decoded.read_image_cached(p).is_inference()


def test_a_rewritten_file_is_read_again(tmp_path, counted):
    p = _png(tmp_path / "a.png", 0)
    decoded.read_image_cached(p)
    _png(p, 1)                                     # new pixels (a new file: atomic write)
    assert torch.equal(decoded.read_image_cached(p), read_image(p))
    assert len(counted) == 2


def test_budget_and_errors(tmp_path, counted, monkeypatch):
    monkeypatch.setattr(decoded, "BUDGET_BYTES", 0)
    p = _png(tmp_path / "a.png", 0)
    assert torch.equal(decoded.read_image_cached(p), read_image(p))
    decoded.read_image_cached(p)
    assert len(counted) == 2 and not decoded._ENTRIES     # past the budget: not kept
    with pytest.raises(InputError, match="not found"):
        decoded.read_image_cached(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match="bad.png"):
        decoded.read_image_cached(tmp_path / "bad.png")
