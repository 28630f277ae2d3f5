"""Running a trained generator: find and load its checkpoint, restore images (tiled when large).

A *source* is one of:

- a run folder (:class:`optiqa.core.runs.RunFolder`): ``<run>/config.yaml`` gives ``network_g`` (``{type,
  **options}``) and ``scale``; the newest readable ``<run>/models/net_g_<iter>.pth`` is used
  (a file that cannot be loaded, e.g. cut short by a crash on a filesystem without atomic
  rename, is skipped with a warning);
- a checkpoint file: its architecture comes from ``arch`` (``TYPE[:k=v,...]``), else from a
  ``network_g`` (and ``scale``) entry embedded in the file, else from the ``config.yaml`` of the
  run folder it lies in (``<run>/models/net_g_N.pth``), else from its keys: any community
  checkpoint whose family spandrel recognises (HAT, SwinIR, SPAN, ESRGAN, DAT, ...;
  :func:`optiqa.nets.community.detect_generator`), with an error naming the keys otherwise;
- ``bicubic``: the parameter-free MATLAB-bicubic baseline (no file).

Weights: ``params_ema`` when the file has it, else ``params`` (``key=`` to choose).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from optiqa.core.checkpoints import CheckpointError, read_checkpoint
from optiqa.core.errors import ConfigError
from optiqa.core.runs import RunFolder, checkpoint_iteration

log = logging.getLogger(__name__)


@dataclass
class LoadedGenerator:
    model: torch.nn.Module
    scale: int
    source: str
    arch: dict
    weights_key: str | None = None   # params_ema / params / None (bare state dict or no weights)
    iteration: int | None = None
    notes: list[str] = field(default_factory=list)
    ema: dict | None = None          # the trainer's EMA record (decay, warm-up, updates)

    def describe(self) -> str:
        arch = ", ".join(f"{k}={v}" for k, v in self.arch.items() if k != "type")
        what = f"{self.arch['type']}" + (f" ({arch})" if arch else "")
        weights = f", weights {self.weights_key}" if self.weights_key else ""
        if self.weights_key == "params_ema":
            weights += f" ({describe_ema(self.ema)}; --weights params for G itself)"
        elif self.weights_key == "params" and self.ema:
            weights += " (G itself, not its EMA)"
        it = f", iteration {self.iteration}" if self.iteration is not None else ""
        return f"{what} x{self.scale} from {self.source}{it}{weights}"


def describe_ema(record: dict | None) -> str:
    """The EMA weights of a checkpoint in words (what ``optiqa evaluate`` prints)."""
    if not isinstance(record, dict):
        return "the EMA of G"
    text = f"the EMA of G, decay {float(record.get('last_decay', record['decay'])):.4g}"
    if "updates" in record:
        text += f" after {int(record['updates'])} updates"
    if record.get("warmup"):
        text += f" (warm-up to {float(record['decay']):g})"
    return text


def resolve_source(source, arch: dict | None = None
                   ) -> tuple[Path, dict | None, int | None, dict]:
    """``(checkpoint path, network_g, iteration, checkpoint contents)`` for a run folder or file;
    ``network_g`` is None when only the checkpoint's keys can tell."""
    path = Path(source)
    if path.is_dir():
        run = RunFolder(path)
        net = arch or run.network_spec("g")  # also: "not a run folder" when config.yaml is absent
        ckpts = run.checkpoints("g")
        if not ckpts:
            raise ConfigError(f"{path}: no models/net_g_<iter>.pth checkpoint yet")
        for iteration, ckpt in ckpts:
            try:
                return ckpt, net, iteration, read_checkpoint(ckpt)
            except CheckpointError as e:
                log.warning("skipping unreadable checkpoint: %s", e)
        raise ConfigError(f"{path}: none of its {len(ckpts)} checkpoints can be read")
    if not path.is_file():
        raise ConfigError(f"{path}: no such run folder or checkpoint file")
    state = read_checkpoint(path)
    iteration = checkpoint_iteration(path)
    if arch:
        return path, arch, iteration, state
    if isinstance(state.get("network_g"), dict):
        return path, _network_from(state, path), iteration, state
    run = RunFolder.of_checkpoint(path)
    if run is not None:
        return path, run.network_spec("g"), iteration, state
    return path, None, iteration, state


def _network_from(cfg: dict, where) -> dict:
    """``network_g`` embedded in a checkpoint, with its ``scale`` (BasicSR's ``upscale``)."""
    net = dict(cfg["network_g"])
    if "type" not in net:
        raise ConfigError(f"{where}: network_g has no type")
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
    if net is None:  # only the keys can tell: a community checkpoint
        from optiqa.core.checkpoints import unwrap_state_dict
        from optiqa.nets.community import detect_generator

        params, used = unwrap_state_dict(state, key, str(ckpt))
        net, model = detect_generator(params, str(ckpt))
        model.requires_grad_(False)
        loaded = LoadedGenerator(model.to(device).eval(), int(model.scale), str(ckpt), net,
                                 used, iteration)
        loaded.notes.append(f"architecture detected from the checkpoint keys: {net}")
        return loaded
    opts = {k: v for k, v in net.items() if k != "type"}
    model = create_generator(net["type"], **opts)
    info = load_generator_checkpoint(model, state, key=key)
    model.requires_grad_(False)
    loaded = LoadedGenerator(model.to(device).eval(), int(model.scale), str(ckpt), dict(net),
                             info.key, iteration, ema=state.get("ema"))
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

