"""Image reading and pairing: every kind of file a user may hand us."""
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from optiqa.core.atomic import atomic_write, atomic_write_text
from optiqa.data.io import pair_paths, read_image, write_image
from optiqa.core.errors import InputError


def write_png16(path, arr: np.ndarray):
    """Minimal 16-bit PNG writer (Pillow cannot write 16-bit RGB)."""
    h, w = arr.shape[:2]
    c = 1 if arr.ndim == 2 else arr.shape[2]
    rows = arr.reshape(h, w * c).astype(">u2")
    raw = b"".join(b"\x00" + rows[i].tobytes() for i in range(h))

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    colour_type = {1: 0, 3: 2, 4: 6}[c]
    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def test_rgb_png_roundtrip(tmp_path):
    img = torch.rand(3, 10, 12)
    write_image(tmp_path / "a.png", img)
    back = read_image(tmp_path / "a.png")
    assert back.shape == (3, 10, 12) and back.dtype == torch.float32
    assert (back - img).abs().max() <= 0.5 / 255 + 1e-6


def test_greyscale_expanded(tmp_path):
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "g.png")
    t = read_image(tmp_path / "g.png")
    assert t.shape == (3, 8, 8) and torch.equal(t[0], t[2])
    assert t[0, 0, 1].item() == pytest.approx(1 / 255)


def test_16bit_rgb_png_keeps_precision(tmp_path):
    arr = (np.random.default_rng(0).random((6, 7, 3)) * 65535).astype(np.uint16)
    write_png16(tmp_path / "a16.png", arr)
    t = read_image(tmp_path / "a16.png")
    expected = torch.from_numpy(arr.astype(np.float32) / 65535).permute(2, 0, 1)
    assert torch.allclose(t, expected, atol=1e-7)


def test_16bit_grey_png(tmp_path):
    arr = (np.random.default_rng(1).random((5, 4)) * 65535).astype(np.uint16)
    write_png16(tmp_path / "g16.png", arr)
    t = read_image(tmp_path / "g16.png")
    assert t.shape == (3, 5, 4)
    assert torch.allclose(t[1], torch.from_numpy(arr.astype(np.float32) / 65535), atol=1e-7)


def test_opaque_rgba_is_accepted(tmp_path):
    arr = np.zeros((4, 4, 4), np.uint8)
    arr[..., 3] = 255
    arr[..., 0] = 200
    Image.fromarray(arr, "RGBA").save(tmp_path / "o.png")
    t = read_image(tmp_path / "o.png")
    assert t.shape == (3, 4, 4) and t[0].max().item() == pytest.approx(200 / 255)


def test_transparent_rgba_is_an_error_naming_the_file(tmp_path):
    arr = np.zeros((4, 4, 4), np.uint8)
    arr[..., 3] = 255
    arr[0, 0, 3] = 0
    Image.fromarray(arr, "RGBA").save(tmp_path / "t.png")
    with pytest.raises(InputError, match=r"t\.png.*1 transparent pixels"):
        read_image(tmp_path / "t.png")


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(InputError, match="nope.png: file not found"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    with pytest.raises(InputError, match="bad.png"):
        read_image(tmp_path / "bad.png")
    write_image(tmp_path / "trunc.jpg", torch.rand(3, 64, 64))
    data = (tmp_path / "trunc.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match="trunc.jpg"):
        read_image(tmp_path / "trunc.jpg")


def test_pairing_by_name_and_prefix(tmp_path):
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    for name in ("I01.bmp", "I011.bmp"):
        write_image(ref / name, torch.rand(3, 4, 4))
    for name in ("I01_08_3.png", "I011_01_1.png", "I01.png"):
        write_image(dist / name, torch.rand(3, 4, 4))
    pairs = {d.name: r.name for d, r in pair_paths(dist, ref)}
    assert pairs == {"I01_08_3.png": "I01.bmp", "I011_01_1.png": "I011.bmp", "I01.png": "I01.bmp"}


def test_pairing_reports_orphans(tmp_path):
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    write_image(ref / "a.png", torch.rand(3, 4, 4))
    write_image(dist / "b_1.png", torch.rand(3, 4, 4))
    with pytest.raises(InputError, match="1 distorted image.*no reference.*b_1.png"):
        pair_paths(dist, ref)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no image files"):
        pair_paths(empty, ref)
    with pytest.raises(InputError, match="two files, two folders"):
        pair_paths(dist / "b_1.png", ref)


def test_write_is_atomic_on_failure(tmp_path):
    target = tmp_path / "x.bin"
    target.write_bytes(b"old complete content")

    def write_half_then_fail(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, write_half_then_fail)
    assert target.read_bytes() == b"old complete content"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]  # no temporary file left behind
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]
