"""Running a trained generator: find and load its checkpoint, restore images (tiled when large).

A *source* is one of:

- a run folder (DESIGN.md "Run folder"): ``<run>/config.yaml`` gives ``network_g`` (``{type,
  **options}``) and ``scale``; the newest readable ``<run>/models/net_g_<iter>.pth`` is used
  (a file that cannot be loaded, e.g. cut short by a crash on a filesystem without atomic
  rename, is skipped with a warning);
- a checkpoint file: its architecture comes from ``--arch TYPE[:k=v,...]``, else from a
  ``network_g`` (and ``scale``) entry embedded in the file, else from the ``config.yaml`` of the
  run folder it lies in (``<run>/models/net_g_N.pth``);
- ``bicubic``: the parameter-free MATLAB-bicubic baseline (no file).

Weights: ``params_ema`` when the file has it, else ``params`` (``key=`` to choose).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from optiqa.errors import ConfigError

log = logging.getLogger(__name__)

_NET_G = re.compile(r"^net_g_(\d+)\.pth$")


@dataclass
class LoadedGenerator:
    model: torch.nn.Module
    scale: int
    source: str
    arch: dict
    weights_key: str | None = None   # params_ema / params / None (bare state dict or no weights)
    iteration: int | None = None
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        arch = ", ".join(f"{k}={v}" for k, v in self.arch.items() if k != "type")
        what = f"{self.arch['type']}" + (f" ({arch})" if arch else "")
        weights = f", weights {self.weights_key}" if self.weights_key else ""
        it = f", iteration {self.iteration}" if self.iteration is not None else ""
        return f"{what} x{self.scale} from {self.source}{it}{weights}"


def _read_run_config(run_dir: Path) -> dict:
    import yaml

    path = run_dir / "config.yaml"
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read ({e})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("network_g"), dict):
        raise ConfigError(f"{path}: no network_g mapping (type and options of the generator)")
    return cfg


def run_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(iteration, path)`` of ``<run>/models/net_g_<iter>.pth``, newest first."""
    models = run_dir / "models"
    found = [(int(m.group(1)), p) for p in models.glob("net_g_*.pth")
             if (m := _NET_G.match(p.name))] if models.is_dir() else []
    return sorted(found, reverse=True)


def resolve_source(source, arch: dict | None = None) -> tuple[Path, dict, int | None, dict]:
    """``(checkpoint path, network_g, iteration, checkpoint contents)`` for a run folder or file."""
    from optiqa.nets.generators import read_checkpoint

    path = Path(source)
    if path.is_dir():
        if not (path / "config.yaml").is_file():
            raise ConfigError(f"{path}: not a run folder (no config.yaml)")
        cfg = _read_run_config(path)
        ckpts = run_checkpoints(path)
        if not ckpts:
            raise ConfigError(f"{path}: no models/net_g_<iter>.pth checkpoint yet")
        for iteration, ckpt in ckpts:
            try:
                state = read_checkpoint(ckpt)
            except ConfigError as e:
                log.warning("skipping unreadable checkpoint: %s", e)
                continue
            net = arch or _network_from(cfg, path / "config.yaml")
            return ckpt, net, iteration, state
        raise ConfigError(f"{path}: none of its {len(ckpts)} checkpoints can be read")
    if not path.is_file():
        raise ConfigError(f"{path}: no such run folder or checkpoint file")
    state = read_checkpoint(path)
    m = _NET_G.match(path.name)
    iteration = int(m.group(1)) if m else None
    if arch:
        return path, arch, iteration, state
    if isinstance(state.get("network_g"), dict):
        return path, _network_from(state, path), iteration, state
    run_cfg = path.parent.parent / "config.yaml"
    if path.parent.name == "models" and run_cfg.is_file():
        return path, _network_from(_read_run_config(path.parent.parent), run_cfg), iteration, state
    raise ConfigError(f"{path}: the checkpoint does not say which network it holds; give "
                      "--arch TYPE[:key=value,...] (e.g. --arch swinir or --arch "
                      "srresnet:num_feat=32,num_block=4)")


def _network_from(cfg: dict, where) -> dict:
    net = dict(cfg["network_g"])
    if "type" not in net:
        raise ConfigError(f"{where}: network_g has no type")
    # the run's top-level scale applies unless network_g sets its own (BasicSR's upscale)
    if cfg.get("scale") is not None and "scale" not in net and "upscale" not in net:
        net["scale"] = cfg["scale"]
    return net


def load_generator(source, arch: dict | None = None, device="cpu", key: str = "auto",
                   scale: int = 4) -> LoadedGenerator:
    """Build and load the generator of a run folder or checkpoint (see the module docstring).

    ``source="bicubic"`` (when no such file exists) gives the bicubic baseline at ``scale``.
    """
    from optiqa.nets.generators import create_generator, load_generator_checkpoint

    if str(source) == "bicubic" and not Path(source).exists():
        model = create_generator("bicubic", scale=scale)
        return LoadedGenerator(model.to(device).eval(), scale, "bicubic baseline",
                               {"type": "bicubic"})
    ckpt, net, iteration, state = resolve_source(source, arch)
    opts = {k: v for k, v in net.items() if k != "type"}
    model = create_generator(net["type"], **opts)
    info = load_generator_checkpoint(model, state, key=key)
    model.requires_grad_(False)
    loaded = LoadedGenerator(model.to(device).eval(), int(model.scale), str(ckpt), dict(net),
                             info.key, iteration)
    loaded.notes.append(f"checkpoint layout {info.layout}, {info.tensors} tensors")
    return loaded


# --------------------------------------------------------------------------------------------
# restoration, tiled
# --------------------------------------------------------------------------------------------
def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile origins covering ``length``: stride ``tile - overlap``, the last tile flush."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _ramp(length: int, fade: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """Blend weights along one tile axis: 0 over the outer quarter of the overlap (where the
    tile's zero padding reaches), a linear rise over its middle half, 1 inside; no ramp at the
    image's own borders."""
    d = torch.arange(length, dtype=torch.float32) + 0.5
    w = torch.ones(length)
    if fade > 0:
        rise = lambda dist: ((dist - fade / 4) / (fade / 2)).clamp(0, 1)  # noqa: E731
        if at_start:
            w = torch.minimum(w, rise(d))
        if at_end:
            w = torch.minimum(w, rise(length - d))
    return w


def restore(model, lr: torch.Tensor, tile: int | None = None, overlap: int = 32,
            scale: int | None = None) -> torch.Tensor:
    """``model(lr)`` clamped to [0, 1]; with ``tile``, in overlapping ``tile x tile`` LR tiles.

    Each tile's output is weighted by a window that fades over the ``overlap`` (see
    :func:`_ramp`) and the weighted sum is normalised: for a network whose receptive field
    radius is at most ``overlap / 4`` LR pixels the result equals the untiled one; beyond that
    seams are blended. Memory is one tile's activations plus the output.
    """
    scale = scale or getattr(model, "scale", 1)
    h, w = lr.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        return model(lr).clamp(0, 1)
    if tile <= 0 or overlap < 0 or overlap >= tile:
        raise ConfigError(f"tile {tile} and overlap {overlap}: need 0 <= overlap < tile")
    n, c = lr.shape[:2]
    out = None
    weight = lr.new_zeros(1, 1, h * scale, w * scale)
    for top in tile_starts(h, tile, overlap):
        for left in tile_starts(w, tile, overlap):
            th, tw = min(tile, h), min(tile, w)
            sr = model(lr[..., top:top + th, left:left + tw])
            if out is None:
                out = sr.new_zeros(n, sr.shape[1], h * scale, w * scale)
            wy = _ramp(th * scale, overlap * scale, top > 0, top + th < h)
            wx = _ramp(tw * scale, overlap * scale, left > 0, left + tw < w)
            win = (wy[:, None] * wx[None, :]).to(sr)
            ys = slice(top * scale, (top + th) * scale)
            xs = slice(left * scale, (left + tw) * scale)
            out[..., ys, xs] += sr * win
            weight[..., ys, xs] += win
    return (out / weight).clamp(0, 1)


def quantize_8bit(img: torch.Tensor) -> torch.Tensor:
    """Round [0, 1] values to the 256 levels of an 8-bit image (what a saved PNG holds)."""
    return torch.floor(img.clamp(0, 1) * 255.0 + 0.5) / 255.0


def restore_files(loaded: LoadedGenerator, input_path, output_path, device="cpu",
                  tile: int | None = None, overlap: int = 32, progress: bool = True) -> list[Path]:
    """Restore one image file or every image of a folder (recursively, keeping relative paths,
    written as PNG). A single input with an existing folder as output goes inside it."""
    from tqdm import tqdm

    from optiqa.data.io import list_images, read_image, write_image

    src, dst = Path(input_path), Path(output_path)
    if src.is_dir():
        jobs = [(p, (dst / p.relative_to(src)).with_suffix(".png"))
                for p in list_images(src, recursive=True)]
    elif src.is_file():
        jobs = [(src, dst / (src.stem + ".png") if dst.is_dir() else dst)]
    else:
        raise ConfigError(f"{src}: no such image file or folder")
    written = []
    with torch.inference_mode():
        for p, out_path in tqdm(jobs, desc="restoring", unit="img",
                                disable=not progress or len(jobs) < 2):
            lr = read_image(p)[None].to(device)
            write_image(out_path, restore(loaded.model, lr, tile, overlap, loaded.scale)[0])
            written.append(out_path)
    return written

