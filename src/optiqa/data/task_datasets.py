"""Datasets for image restoration training and testing (SR by default), deterministic given a seed.

Ground truth (``dataroot_gt``): a folder searched recursively for PNG/JPEG/BMP (greyscale becomes
RGB), a benchmark set root in the ``../shared/data/sr`` layout (``<set>/HR`` with
``<set>/LR_bicubic/X<scale>``, see :func:`resolve_sr_set`), or ``builtin:samples`` (the built-in
photos of :mod:`optiqa.data.samples`; ``builtin:samples/<size>`` for square crops of that size).
Inputs come from a paired LR folder (``dataroot_lq``; pairing by the file's relative name, a DIV2K
``x4`` suffix ignored) or are made on the fly by a degradation (:mod:`optiqa.data.task_degradations`,
bicubic MATLAB-style x``scale`` by default).

Ground truth is first cropped at the bottom/right to a multiple of the scale (BasicSR ``mod_crop``),
in training and in testing alike.

**Training** (:class:`SRTrainDataset`): sample ``k`` (a global index) is a pure function of
``(seed, k)``. Its image is entry ``k mod n`` of a permutation of the n images drawn from
``(seed, k // n)`` (every image once per pass); its crop position (aligned to the scale, as
BasicSR's paired crop), flips, rotation and degradation noise come from a ``torch.Generator``
seeded with ``crc32((seed, k))``. :class:`IterationBatchSampler` gives rank ``r`` of ``w`` at
iteration ``i`` the samples ``(i * w + r) * batch + j``; so the data stream has no state beyond
``(seed, iteration)``: resuming at iteration ``i`` is ``start_iter=i``, and worker count or
order of loading changes nothing. With ``degrade_on_device`` the item holds the (augmented)
ground-truth crop and a degradation seed drawn from the same generator, and the training step
degrades the batch on its device (:meth:`SRTrainDataset.degrade_batch`; e.g. Real-ESRGAN's
degradation on the GPU), still a pure function of ``(seed, k)``.

**Testing** (:class:`SRTestDataset`): whole images, no randomness (noise seeded by the image
name), ground truth cropped to a multiple of the scale.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from optiqa.data.task_degradations import create_degradation
from optiqa.core.errors import ConfigError, InputError

BUILTIN_SAMPLES = "builtin:samples"


def seeded_generator(seed: int, *key) -> torch.Generator:
    """A CPU generator seeded from ``crc32(repr((seed, *key)))``, stable across processes and
    machines (Python's ``hash`` is salted per process)."""
    return torch.Generator().manual_seed(zlib.crc32(repr((int(seed),) + key).encode()))


def mod_crop(img: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop ``(..., H, W)`` at the bottom/right to multiples of ``scale``."""
    h, w = img.shape[-2:]
    return img[..., : h - h % scale, : w - w % scale]


def resolve_sr_set(path, scale: int) -> tuple[str, str | None]:
    """A benchmark set root (``<set>/HR`` [+ ``<set>/LR_bicubic/X<scale>``]) or a plain HR folder.

    Returns ``(hr, lr_or_None)``; ``builtin:...`` passes through.
    """
    if str(path).startswith("builtin:"):
        return str(path), None
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: data folder not found")
    if (p / "HR").is_dir():
        lr = p / "LR_bicubic" / f"X{scale}"
        return str(p / "HR"), (str(lr) if lr.is_dir() else None)
    return str(p), None


def resolve_lr_source(dataroot_gt, dataroot_lq, degradation, scale: int) -> tuple:
    """``(gt folder, LR folder or None)`` of a dataset; ``None``: the degradation makes the LR.

    An explicit ``dataroot_lq`` is used as given (``dataroot_gt`` too). Otherwise
    ``dataroot_gt`` goes through :func:`resolve_sr_set`, and a set's own LR folder is used
    unless a degradation is given: an explicit degradation wins over a found LR folder.
    Both an explicit ``dataroot_lq`` and a degradation is a contradiction (an error).
    """
    if dataroot_lq is not None and degradation is not None:
        raise ConfigError("give either dataroot_lq or a degradation, not both")
    if dataroot_lq is not None:
        return dataroot_gt, dataroot_lq
    dataroot_gt, found_lq = resolve_sr_set(dataroot_gt, scale)
    return dataroot_gt, (None if degradation is not None else found_lq)


def _image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the file header, without decoding."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"{path}: not a readable image ({e})") from None
    return h, w


class ImageFolder:
    """Ground-truth images (files or built-in photos) by key, with sizes known up front."""

    def __init__(self, root, cache: bool = False):
        self.root = str(root)
        self.cache = cache
        self._tensors: dict[int, torch.Tensor] = {}
        if self.root.startswith("builtin:"):
            self._init_builtin(self.root)
        else:
            from optiqa.data.io import list_images

            folder = Path(self.root)
            if not folder.is_dir():
                raise ConfigError(f"{folder}: data folder not found")
            try:
                self.paths = list_images(folder, recursive=True)
            except InputError as e:
                raise ConfigError(str(e)) from None
            self.keys = [p.relative_to(folder).with_suffix("").as_posix() for p in self.paths]
            self.sizes = [_image_size(p) for p in self.paths]

    def _init_builtin(self, root: str):
        """``builtin:samples`` (the six classic photos), ``builtin:train`` / ``builtin:test``
        (the disjoint splits of :mod:`optiqa.data.samples`), each optionally ``/<size>``."""
        from optiqa.data.samples import SPLITS, load_samples

        name, _, size = root.partition("/")
        split = name.removeprefix("builtin:")
        if name != BUILTIN_SAMPLES and split not in SPLITS:
            raise ConfigError(f"unknown built-in data {root!r}; use {BUILTIN_SAMPLES!r}, "
                              f"{', '.join(repr('builtin:' + s) for s in SPLITS)}, each "
                              "optionally followed by /<size>")
        try:
            size = int(size) if size else None
        except ValueError:
            raise ConfigError(f"{root!r}: size after '/' must be an integer") from None
        photos = load_samples(size, names=None if name == BUILTIN_SAMPLES else SPLITS[split])
        self.keys = list(photos)
        self.paths = [Path(f"{root}:{k}") for k in self.keys]
        self._tensors = dict(enumerate(photos.values()))
        self.sizes = [tuple(t.shape[-2:]) for t in photos.values()]
        self.cache = True

    def __len__(self) -> int:
        return len(self.keys)

    def load(self, i: int) -> torch.Tensor:
        t = self._tensors.get(i)
        if t is None:
            from optiqa.data.io import read_image

            t = read_image(self.paths[i])
            if self.cache:
                self._tensors[i] = t
        return t


def pair_lr_folder(hr: ImageFolder, lr_root, scale: int) -> ImageFolder:
    """The LR folder's images reordered to match ``hr``; checks names and ``LR * scale == HR``.

    A file pairs by relative name without extension; an LR name may carry the DIV2K suffix
    ``x<scale>`` (``0001x4.png`` pairs with ``0001.png``). Errors name the file.
    """
    lr = ImageFolder(lr_root)
    by_key = {}
    for i, k in enumerate(lr.keys):
        by_key[k.lower()] = i
        if k.lower().endswith(f"x{scale}"):
            by_key.setdefault(k.lower()[: -len(f"x{scale}")], i)
    order = []
    for k, path, (h, w) in zip(hr.keys, hr.paths, hr.sizes):
        i = by_key.get(k.lower())
        if i is None:
            raise ConfigError(f"{path}: no LR image named {k!r} in {lr_root}")
        lh, lw = lr.sizes[i]
        if (lh * scale, lw * scale) != (h - h % scale, w - w % scale):
            raise ConfigError(f"{lr.paths[i]}: LR size {lw}x{lh} times scale {scale} does not "
                              f"match HR {path} ({w}x{h}, {w - w % scale}x{h - h % scale} after "
                              "cropping to a multiple of the scale)")
        order.append(i)
    lr.paths = [lr.paths[i] for i in order]
    lr.keys = [lr.keys[i] for i in order]
    lr.sizes = [lr.sizes[i] for i in order]
    return lr


def augment(imgs: list[torch.Tensor], hflip: bool, vflip: bool, rot90: bool) -> list[torch.Tensor]:
    """Same flips and transpose (BasicSR's ``augment``: the 8 dihedral transforms) on each image."""
    out = []
    for t in imgs:
        if hflip:
            t = t.flip(-1)
        if vflip:
            t = t.flip(-2)
        if rot90:
            t = t.transpose(-2, -1)
        out.append(t.contiguous())
    return out


class SRTrainDataset(Dataset):
    """Random ``gt_size`` crops with flips/rotations; item ``k`` depends only on ``(seed, k)``.

    ``__getitem__(k)`` accepts any non-negative global sample index (see the module docstring);
    ``len()`` is the number of images. Returns ``{'lq': (3, gt/s, gt/s), 'gt': (3, gt, gt),
    'key': name, 'origin': (top, left)}`` (the crop's corner in the scale-cropped image).
    Errors before training: ``gt_size`` larger than an image (naming it), LR/HR scale mismatch,
    missing folders.
    """

    def __init__(self, dataroot_gt, scale: int = 4, gt_size: int = 128, dataroot_lq=None,
                 degradation=None, use_flip: bool = True, use_rot: bool = True, seed: int = 0,
                 cache: bool = False, degrade_on_device: bool = False):
        self.scale, self.gt_size, self.seed = int(scale), int(gt_size), int(seed)
        self.degrade_on_device = bool(degrade_on_device)
        self.use_flip, self.use_rot = bool(use_flip), bool(use_rot)
        if self.gt_size % self.scale:
            raise ConfigError(f"gt_size {gt_size} is not a multiple of scale {scale}")
        dataroot_gt, dataroot_lq = resolve_lr_source(dataroot_gt, dataroot_lq, degradation,
                                                     self.scale)
        self.gt = ImageFolder(dataroot_gt, cache=cache)
        for path, (h, w) in zip(self.gt.paths, self.gt.sizes):
            if min(h - h % self.scale, w - w % self.scale) < self.gt_size:
                raise ConfigError(f"gt_size {self.gt_size} is larger than image {path} "
                                  f"({w}x{h})")
        self.lq = pair_lr_folder(self.gt, dataroot_lq, self.scale) if dataroot_lq else None
        if self.lq is not None and cache:
            self.lq.cache = True
        self.degradation = None if self.lq else create_degradation(degradation, self.scale)
        if self.degrade_on_device and self.degradation is None:
            raise ConfigError("degrade_on_device needs a degradation (there is an LR folder)")
        self.lq_source = lq_source(dataroot_lq, self.degradation, self.scale)

    def __len__(self) -> int:
        return len(self.gt)

    def image_index(self, k: int) -> int:
        n = len(self.gt)
        perm = torch.randperm(n, generator=seeded_generator(self.seed, "epoch", k // n))
        return int(perm[k % n])

    def __getitem__(self, k: int) -> dict:
        if k < 0:
            raise IndexError(k)
        i = self.image_index(k)
        g = seeded_generator(self.seed, "sample", k)
        s, gs = self.scale, self.gt_size
        gt_full = mod_crop(self.gt.load(i), s)
        h, w = gt_full.shape[-2:]
        top = s * int(torch.randint(0, (h - gs) // s + 1, (1,), generator=g))
        left = s * int(torch.randint(0, (w - gs) // s + 1, (1,), generator=g))
        flips = torch.rand(3, generator=g).lt(0.5).tolist()
        gt = gt_full[:, top:top + gs, left:left + gs]
        if self.degrade_on_device:  # the training step degrades it (degrade_batch)
            gt, = augment([gt], self.use_flip and flips[0], self.use_rot and flips[1],
                          self.use_rot and flips[2])
            seed = int(torch.randint(2 ** 62, (), generator=g))
            return {"gt": gt, "seed": seed, "key": self.gt.keys[i], "origin": (top, left)}
        if self.lq is not None:
            lq_full = self.lq.load(i)
            lq = lq_full[:, top // s:(top + gs) // s, left // s:(left + gs) // s]
        else:
            lq = self._degrade_crop(gt_full, top, left, g)
        hflip = self.use_flip and flips[0]
        vflip, rot = self.use_rot and flips[1], self.use_rot and flips[2]
        lq, gt = augment([lq, gt], hflip, vflip, rot)
        return {"lq": lq, "gt": gt, "key": self.gt.keys[i], "origin": (top, left)}

    def _degrade_crop(self, gt_full, top, left, g) -> torch.Tensor:
        """Degrade the crop plus up to ``context_lr * scale`` pixels of context on each side, then
        cut the context away: identical to cropping the degraded full image (tested), at the cost
        of the crop only."""
        s, gs = self.scale, self.gt_size
        ctx = self.degradation.context_lr * s
        h, w = gt_full.shape[-2:]
        t0, l0 = max(0, top - ctx), max(0, left - ctx)
        t1, l1 = min(h, top + gs + ctx), min(w, left + gs + ctx)
        lq = self.degradation(gt_full[None, :, t0:t1, l0:l1].contiguous(), g)[0]
        dt, dl = (top - t0) // s, (left - l0) // s
        return lq[:, dt:dt + gs // s, dl:dl + gs // s]

    def batch(self, iteration: int, batch_size: int, rank: int = 0, world_size: int = 1) -> dict:
        """The collated batch of ``iteration`` for ``rank`` without a DataLoader."""
        idx = IterationBatchSampler.indices(iteration, batch_size, rank, world_size)
        items = [self[k] for k in idx]
        if self.degrade_on_device:
            return {"gt": torch.stack([it["gt"] for it in items]),
                    "seed": torch.tensor([it["seed"] for it in items]),
                    "key": [it["key"] for it in items]}
        return {"lq": torch.stack([it["lq"] for it in items]),
                "gt": torch.stack([it["gt"] for it in items]),
                "key": [it["key"] for it in items]}

    def degrade_batch(self, gt: torch.Tensor, seeds) -> torch.Tensor:
        """Inputs of a ``degrade_on_device`` batch: ground-truth crop ``i`` degraded on its own
        device by a CPU generator seeded with ``seeds[i]`` (drawn from the sample's seed, so the
        batch stays a pure function of ``(seed, iteration)``). The crop is degraded as it is
        (no context around it: crops of different images must stack)."""
        out = []
        for img, seed in zip(gt, seeds):
            g = torch.Generator().manual_seed(int(seed))
            out.append(self.degradation(img[None], g)[0])
        return torch.stack(out)


class IterationBatchSampler(Sampler):
    """Batches of global sample indices for iterations ``start_iter .. total_iter - 1``.

    Iteration ``i`` on rank ``r`` of ``world_size`` gets ``(i * world_size + r) * batch_size + j``,
    ``j < batch_size``; ``total_iter=None`` runs forever.
    """

    def __init__(self, batch_size: int, start_iter: int = 0, total_iter: int | None = None,
                 rank: int = 0, world_size: int = 1):
        self.batch_size, self.start_iter, self.total_iter = batch_size, start_iter, total_iter
        self.rank, self.world_size = rank, world_size

    @staticmethod
    def indices(iteration: int, batch_size: int, rank: int = 0, world_size: int = 1) -> list[int]:
        base = (iteration * world_size + rank) * batch_size
        return list(range(base, base + batch_size))

    def __iter__(self):
        i = self.start_iter
        while self.total_iter is None or i < self.total_iter:
            yield self.indices(i, self.batch_size, self.rank, self.world_size)
            i += 1

    def __len__(self) -> int:
        if self.total_iter is None:
            raise TypeError("infinite sampler has no length")
        return max(0, self.total_iter - self.start_iter)


class SRTestDataset(Dataset):
    """Whole images for validation/testing: ``{'lq', 'gt', 'key'}``; gt cropped to a multiple of
    the scale; lq from ``dataroot_lq`` or from the degradation (noise seeded by the image key)."""

    def __init__(self, dataroot_gt, scale: int = 4, dataroot_lq=None, degradation=None,
                 seed: int = 0, cache: bool = False):
        self.scale, self.seed = int(scale), int(seed)
        dataroot_gt, dataroot_lq = resolve_lr_source(dataroot_gt, dataroot_lq, degradation,
                                                     self.scale)
        self.gt = ImageFolder(dataroot_gt, cache=cache)
        for path, (h, w) in zip(self.gt.paths, self.gt.sizes):
            if min(h, w) < self.scale:
                raise ConfigError(f"{path}: image of {w}x{h} is smaller than the scale")
        self.lq = pair_lr_folder(self.gt, dataroot_lq, self.scale) if dataroot_lq else None
        self.degradation = None if self.lq else create_degradation(degradation, self.scale)
        self.lq_source = lq_source(dataroot_lq, self.degradation, self.scale)

    def __len__(self) -> int:
        return len(self.gt)

    def __getitem__(self, i: int) -> dict:
        gt = mod_crop(self.gt.load(i), self.scale)
        key = self.gt.keys[i]
        if self.lq is not None:
            lq = self.lq.load(i)
        else:
            lq = self.degradation(gt[None], seeded_generator(self.seed, "test", key))[0]
        return {"lq": lq, "gt": gt, "key": key}


def lq_source(dataroot_lq, degradation, scale: int | None = None) -> str:
    """Where a dataset's inputs come from, in words (the training log and tables say it): "LR
    images" from "HR images" when the task upscales, degraded inputs from the ground truth when
    it does not (denoising, JPEG, deblurring: scale 1)."""
    if scale == 1:
        inputs, truth = "inputs (no upscaling)", "ground-truth images"
    else:
        inputs, truth = "LR images", "HR images"
    if dataroot_lq:
        return f"{inputs}: files under {dataroot_lq}"
    return f"{inputs}: made on the fly from the {truth} ({describe_degradation(degradation)})"


def describe_degradation(d) -> str:
    """One line saying what a degradation does (its ``describe()``, else its class name)."""
    describe = getattr(d, "describe", None)
    return describe() if describe is not None else type(d).__name__


TRAIN_KEYS = {"dataroot_gt", "dataroot_lq", "gt_size", "use_flip", "use_rot", "degradation",
               "cache", "degrade_on_device"}
LOADER_KEYS = {"batch_size", "num_worker", "name", "type", "phase", "pin_memory"}


def create_train_loader(dataset: SRTrainDataset, batch_size: int, start_iter: int = 0,
                        total_iter: int | None = None, num_workers: int = 0, rank: int = 0,
                        world_size: int = 1, pin_memory: bool = False) -> DataLoader:
    """A DataLoader yielding the batches of iterations ``start_iter ..`` (module docstring).

    The loader has its own generator: without one, every ``iter(loader)`` draws the workers'
    base seed from the *global* torch RNG, so a resumed run (which creates its loader after
    restoring the RNG states of the checkpoint) would shift every later draw of that RNG
    (drop-path masks: SwinIR, HAT) against an uninterrupted run, whose loader drew at start.
    """
    sampler = IterationBatchSampler(batch_size, start_iter, total_iter, rank, world_size)
    seed = getattr(dataset, "seed", 0)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                      pin_memory=pin_memory, persistent_workers=num_workers > 0,
                      generator=seeded_generator(seed, "loader", rank))
