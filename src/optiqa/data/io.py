"""Image files in and out, with errors that name the file and the problem.

Images become float32 ``CHW`` RGB tensors in [0, 1]:
- 8-bit files are divided by 255, 16-bit PNGs by 65535 (read at full precision through
  torchvision's libpng decoder, since Pillow truncates 16-bit RGB to 8 bits);
- greyscale is expanded to three equal channels;
- an alpha channel is dropped when fully opaque; transparent pixels are an error, because what
  lies under them is undefined and no metric can judge it.
Writes are atomic (:mod:`optiqa.core.atomic`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from optiqa.core.atomic import atomic_write
from optiqa.core.errors import InputError
from optiqa.ops import rounding

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` sorted by name; an error if the folder is missing or has none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern) if p.is_file() and is_image_file(p))
    if not files:
        raise InputError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def _png_bit_depth(path: Path) -> int | None:
    with open(path, "rb") as f:
        head = f.read(25)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 25:
        return None
    return head[24]


def _read_png16(path: Path) -> np.ndarray:
    from torchvision.io import ImageReadMode, decode_image, read_file

    try:
        t = decode_image(read_file(str(path)), mode=ImageReadMode.UNCHANGED)
    except RuntimeError as e:
        raise InputError(f"{path}: cannot decode 16-bit PNG ({e})") from None
    return t.permute(1, 2, 0).numpy().astype(np.float32) / 65535.0


def _read_pil(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB")
            elif mode in ("1",):
                im = im.convert("L")
            arr = np.asarray(im)
    except UnidentifiedImageError:
        raise InputError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{path}: corrupt or truncated image ({e})") from None
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype in (np.uint16, np.int32) and arr.ndim == 2:  # 16-bit greyscale ('I;16', 'I')
        arr = arr.astype(np.float32) / 65535.0
    elif arr.dtype == np.float32 and arr.ndim == 2:  # 'F' mode TIFF, assumed in [0, 1]
        pass
    elif arr.dtype == bool:
        arr = arr.astype(np.float32)
    else:
        raise InputError(f"{path}: unsupported pixel format (mode {mode}, dtype {arr.dtype})")
    return arr


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file as a float32 RGB tensor ``(3, H, W)`` in [0, 1].

    Raises :class:`InputError` naming the file for a missing, corrupt or transparent image.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    arr = _read_png16(path) if _png_bit_depth(path) == 16 else _read_pil(path)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    channels = arr.shape[2]
    if channels in (2, 4):  # grey+alpha or RGB+alpha
        alpha = arr[:, :, -1]
        if alpha.min() < 1.0:
            n = int((alpha < 1.0).sum())
            raise InputError(f"{path}: has an alpha channel with {n} transparent pixels; metrics "
                             "compare opaque images, flatten it onto a background first")
        arr = arr[:, :, :-1]
        channels -= 1
    if channels == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif channels != 3:
        raise InputError(f"{path}: unsupported number of channels ({channels})")
    if not np.isfinite(arr).all():
        raise InputError(f"{path}: contains NaN or infinite values")
    if arr.min() < 0 or arr.max() > 1:
        raise InputError(f"{path}: float image with values outside [0, 1]")
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()


def read_pixels(path) -> torch.Tensor:
    """``(3, H, W)``: uint8 for 8-bit RGB/greyscale files, else float in [0, 1] (:func:`read_image`).

    8-bit images stay uint8 until they are scored (a quarter of the bytes between processes, no
    float passes while decoding); :func:`as_float` then gives exactly :func:`read_image`'s values.
    """
    try:
        with Image.open(path) as im:
            # 16-bit PNGs go through read_image (torchvision's decoder keeps their precision)
            if im.mode in ("RGB", "L") and (im.format != "PNG" or _png_bit_depth(path) == 8):
                arr = np.array(im)  # one decode, one copy (convert() would add another)
                t = torch.from_numpy(arr)
                return (t.expand(3, *t.shape) if t.ndim == 2 else t.permute(2, 0, 1)).contiguous()
    except OSError:
        pass  # read_image names the file and the problem
    return read_image(path)


def as_float(t: torch.Tensor) -> torch.Tensor:
    """uint8 pixels to float32 in [0, 1] (the same values as :func:`read_image`)."""
    return t.float().div_(255.0) if t.dtype == torch.uint8 else t


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` or ``(1, 3, H, W)`` float in [0, 1] to an ``(H, W, 3)`` uint8 array (rounded)."""
    if img.ndim == 4:
        if img.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {img.shape[0]}")
        img = img[0]
    # half away from zero (MATLAB's imwrite), like every 8-bit conversion here (ops/rounding)
    arr = rounding.to_uint8(img).permute(1, 2, 0).cpu().numpy()
    return arr[:, :, 0] if arr.shape[2] == 1 else arr


def write_image(path: str | os.PathLike, img: torch.Tensor, **save_kwargs) -> Path:
    """Write a [0, 1] image tensor as an 8-bit file (format from the suffix), atomically."""
    path = Path(path)
    arr = to_uint8(img)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unknown image format {path.suffix!r}")
    return atomic_write(path, lambda tmp: Image.fromarray(arr).save(tmp, format=fmt,
                                                                   **save_kwargs))


_SEPARATORS = ("_", "-", ".", " ")


def image_channels(path: str | os.PathLike) -> int | None:
    """1 for a greyscale file, 3 for colour (alpha not counted), None if unknown. Reads only the
    header (no decoding)."""
    try:
        with Image.open(path) as im:
            bands = im.getbands()
    except (OSError, SyntaxError, ValueError):
        return None  # read_image names the problem when the file is scored
    colour = [b for b in bands if b != "A"]
    if len(colour) == 1 and bands != ("P",):
        return 1
    return 3


@dataclass
class Pairing:
    """``pairs`` (distorted, reference) to score; ``unmatched``: distorted files in a folder that
    have no reference (skipped)."""

    pairs: list[tuple[Path, Path]]
    unmatched: list[Path] = field(default_factory=list)


def match_pairs(distorted: str | os.PathLike, reference: str | os.PathLike) -> Pairing:
    """Pair distorted and reference images: two files; two folders paired by file name; or a
    folder of distorted images against one reference file.

    In folders, a distorted file pairs with the reference of the same stem (extension ignored);
    failing that, with the reference whose stem, followed by ``_``, ``-``, ``.`` or a space,
    starts the distorted stem (``I01_08_3.bmp`` -> ``I01.bmp``, the IQA-database convention),
    the longest such stem winning. Distorted files without a reference are returned in
    ``unmatched`` (the caller decides whether that is an error).
    """
    distorted, reference = Path(distorted), Path(reference)
    for p in (distorted, reference):
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
    if distorted.is_file() and reference.is_file():
        return Pairing([(distorted, reference)])
    if distorted.is_dir() and reference.is_file():
        files = [d for d in list_images(distorted) if d.resolve() != reference.resolve()]
        if not files:
            raise InputError(f"{distorted}: no distorted images besides the reference")
        return Pairing([(d, reference) for d in files])
    if distorted.is_file():
        raise InputError(f"give two files, two folders, or a folder of distorted images and one "
                         f"reference file; got the file {distorted} and the folder {reference}")
    refs: dict[str, Path] = {}
    for p in list_images(reference):
        key = p.stem.lower()
        if key in refs:
            raise InputError(f"{reference}: two references with the stem {p.stem!r} "
                             f"({refs[key].name}, {p.name})")
        refs[key] = p
    by_length = sorted(refs, key=len, reverse=True)
    out = Pairing([])
    for d in list_images(distorted):
        stem = d.stem.lower()
        match = refs.get(stem)
        if match is None:
            match = next((refs[r] for r in by_length
                          if len(stem) > len(r) and stem.startswith(r) and stem[len(r)] in
                          _SEPARATORS), None)
        if match is None:
            out.unmatched.append(d)
        else:
            out.pairs.append((d, match))
    return out


def pair_paths(distorted: str | os.PathLike, reference: str | os.PathLike
               ) -> list[tuple[Path, Path]]:
    """:func:`match_pairs`, with a distorted file that has no reference being an error."""
    pairing = match_pairs(distorted, reference)
    if pairing.unmatched:
        names = [p.name for p in pairing.unmatched]
        shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
        raise InputError(f"{len(names)} distorted image(s) in {distorted} have no reference "
                         f"in {reference}: {shown}")
    return pairing.pairs
