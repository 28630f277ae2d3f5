"""``optiqa study CONFIG --rehearse``: the whole study, shrunk, on a CPU, before GPU hours.

Every cell, baseline, evaluator, assessment, transfer experiment and report section of CONFIG
runs, with everything made small: a tiny generator of the same architecture family
(:data:`TINY_GENERATORS`), :data:`ITERATIONS` training iterations, small crops, a few test
images, small scratch discriminators. Data that is not on the machine is replaced by the built-in
photos; IQA databases by the built-in known-order set; weights that are not on the machine by
fixed-seed random ones (:mod:`optiqa.core.rehearsal`, the only place that may). The start model
(``path.pretrain_network_g``) cannot fit the tiny generator, so a fixed-seed random tiny
generator stands in for it. Every substitution is a line of the rehearsal's record
(``StudyConfig.rehearsal``), listed at the top of the report, which is marked as a rehearsal on
its page, every table and every figure. Its numbers test the machinery, never the hypotheses.
A finished cell keeps only what later stages read (no resume state, one file per distinct
discriminator: :mod:`optiqa.study.footprint`), so that a laptop's disk holds the rehearsal.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

from optiqa.study.config import IQADataOpts, RehearsalInfo, StudyConfig

ITERATIONS = 1   # one full step: every loss's and discriminator's forward, backward, optimizer
                 # step, checkpoint and state file (cells x steps is what costs on a CPU)
TRAIN_SIZE = 96        # side of the training images (crops of CROP from them)
# two crops of two different photos: a batch of one dark crop (hubble) gives MAD a zero loss and
# gradient (below its visibility threshold), which leaves a relative adversarial weight undefined
BATCH = 2
CROP = 64              # gt_size: the largest min_size of the FR losses (cw_ssim) fits
TEST_SIZE = 104        # side of the test images: NIQE's 96 px after a x4 border crop fits
TEST_IMAGES = 1        # per test set
IQA_SIZE = 64
IQA_PHOTOS = ["astronaut", "chelsea", "rocket"]
IQA_DISTORTIONS = ["gaussian_blur", "desaturate", "sharpen"]   # metrics disagree on these
# the same family, as small as it runs: options merged into the config's network_g
TINY_GENERATORS = {
    "swinir": {"embed_dim": 12, "depths": [1], "num_heads": [2], "window_size": 4,
               "mlp_ratio": 1.0, "num_feat": 8},
    "swinir_light": {"embed_dim": 12, "depths": [1], "num_heads": [2], "window_size": 4,
                     "mlp_ratio": 1.0},
    "srresnet": {"num_feat": 8, "num_block": 1},
    "rrdbnet": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
}
TINY_DISCRIMINATORS = {"patchgan": {"ndf": 8, "n_layers": 2}, "unet": {"num_feat": 8}}


def _iqa() -> IQADataOpts:
    return IQADataOpts("synthetic", size=IQA_SIZE, photos=list(IQA_PHOTOS),
                       distortions=list(IQA_DISTORTIONS))


def _base_raw(cfg: StudyConfig) -> dict:
    from optiqa.study.cells import _overrides
    from optiqa.core.config import apply_overrides, read_yaml

    return apply_overrides(read_yaml(cfg.train.base), _overrides(cfg.train.overrides))


def _small_folder(source, dst: Path, n: int, size: int, fallback: list[str]) -> tuple[str, str]:
    """Up to ``n`` images of ``source`` centre-cropped (or of the built-in ``fallback`` photos
    when ``source`` is not on this machine), written as PNG into ``dst``; returns (folder,
    what was used)."""
    import torch.nn.functional as F

    from optiqa.data.io import list_images, read_image, write_image
    from optiqa.data.samples import load_sample

    dst.mkdir(parents=True, exist_ok=True)
    src = None if source is None or str(source).startswith("builtin:") else Path(source)
    if src is not None and (src / "HR").is_dir():
        src = src / "HR"
    used = []
    if src is not None and src.is_dir():
        for p in list_images(src, recursive=True)[:n]:
            img = read_image(p)
            h, w = img.shape[-2:]
            if min(h, w) < size:
                img = F.interpolate(img[None], scale_factor=size / min(h, w), mode="bicubic",
                                    antialias=True)[0].clamp(0, 1)
                h, w = img.shape[-2:]
            top, left = (h - size) // 2, (w - size) // 2
            write_image(dst / f"{p.stem}.png", img[:, top:top + size, left:left + size])
            used.append(p.name)
        return str(dst), f"{n} image(s) of {src} ({', '.join(used)}), centre crops of {size} px"
    for name in fallback[:n]:
        write_image(dst / f"{name}.png", load_sample(name, size))
    where = "not on this machine" if source and not str(source).startswith("builtin:") \
        else "built in"
    return str(dst), (f"{source} ({where}): replaced by the built-in photos "
                      f"{', '.join(fallback[:n])} at {size} px")


def rehearsal_config(cfg: StudyConfig, out: str | Path) -> StudyConfig:
    """``cfg`` shrunk for a CPU rehearsal into ``out`` (small data written under
    ``out/rehearsal-data``); the substitutions are in the result's ``rehearsal``."""
    import torch

    from optiqa.data.samples import SPLITS
    from optiqa.nets.generators import create_generator

    from optiqa.study.folder import StudyFolder

    out = Path(out).resolve()
    data = StudyFolder(out).rehearsal_data
    new = copy.deepcopy(cfg)
    subs: list[str] = []
    base = _base_raw(cfg)
    ov = dict(new.train.overrides)
    # the generator: the same family, tiny
    net_g = dict(base.get("network_g") or {})
    tiny = TINY_GENERATORS.get(net_g.get("type"))
    if tiny is None:
        subs.append(f"generator {net_g.get('type')}: no tiny preset, trained at full size")
    else:
        ov.pop("network_g", None)
        ov["network_g"] = {**net_g, **tiny}
        subs.append(f"generator {net_g.get('type')}: tiny version of the same architecture "
                    f"({', '.join(f'{k} {v}' for k, v in tiny.items())})")
    its = {"train.total_iter": ITERATIONS, "train.warmup_iter": 0, "train.pixel_only_iter": 0,
           "train.scheduler": {"type": "constant"}, "train.ema_decay": 0.5,
           "train.bf16": False, "train.compile": False, "train.channels_last": False,
           "datasets.train.gt_size": CROP, "datasets.train.batch_size": BATCH,
           "datasets.train.num_worker": 0,
           "logger": {"print_freq": 1, "save_checkpoint_freq": ITERATIONS,
                      "keep_checkpoints": 1}}
    ov.update(its)
    steps = f"{ITERATIONS} iteration{'' if ITERATIONS == 1 else 's'}"
    subs.append(f"training: {steps} per cell (batch {BATCH}, {CROP} px crops, constant "
                "learning rate, no warm-up, float32)")
    start = ov.get("path.pretrain_network_g") or (base.get("path") or {}).get(
        "pretrain_network_g")
    if start and tiny is not None:
        # the tiny generator cannot load the real start model: a fixed-seed random one stands in
        data.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        g = create_generator(**{**ov["network_g"], "scale": cfg.task_opts[
            next(iter(cfg.tasks))].scale})
        path = data / "start_net_g.pth"
        torch.save({"params": g.state_dict()}, path)
        ov["path.pretrain_network_g"] = str(path)
        subs.append(f"start model path.pretrain_network_g {start}: replaced by a fixed-seed random "
                    "tiny generator (seed 0)")
    new.train.overrides = ov
    if new.train.pretrain is not None:
        new.train.pretrain.total_iter = ITERATIONS
        new.train.pretrain.overrides = {
            **new.train.pretrain.overrides, "logger": its["logger"],
            "train.scheduler": {"type": "constant"}}
        subs.append(f"shared pre-training: {steps}")
    # discriminators: the scratch ones slim, the backbone ones as they are (random weights where
    # the pretrained ones are missing: recorded when built)
    for label, net in new.adversarial.discriminators.items():
        small = TINY_DISCRIMINATORS.get(net.get("type"))
        if small:
            net.update(small)
            subs.append(f"discriminator {label} ({net['type']}): slim "
                        f"({', '.join(f'{k} {v}' for k, v in small.items())})")
    # data
    folder, what = _small_folder(new.data.train, data / "train", 4, TRAIN_SIZE,
                                 list(SPLITS["train"]))
    subs.append(f"training data {what}")
    new.data.train = folder
    if new.data.train_lq:
        subs.append(f"paired LR training data {new.data.train_lq}: not used (LR made by the task)")
        new.data.train_lq = None
    fallback = list(SPLITS["test"])
    for i, (name, path) in enumerate(list(new.data.test.items())):
        photos = fallback[(TEST_IMAGES * i) % len(fallback):] + fallback
        folder, what = _small_folder(path, data / "test" / name, TEST_IMAGES, TEST_SIZE, photos)
        new.data.test[name] = folder
        subs.append(f"test set {name}: {what}")
    new.evaluators.tile = None
    # IQA data: databases replaced by the built-in known-order set
    kept, replaced = [], []
    for ds in new.assessment.datasets:
        if ds.name.lower() == "synthetic":
            kept.append(_iqa())
        else:
            replaced.append(ds.name)
    if replaced or not kept:
        kept = kept[:1] or [_iqa()]
        subs.append(f"assessment datasets {', '.join(replaced)}: replaced by the built-in "
                    f"known-order set ({', '.join(IQA_PHOTOS)} at {IQA_SIZE} px, "
                    f"{' and '.join(IQA_DISTORTIONS)} at 5 levels; distortion levels, not human "
                    "opinion)")
    new.assessment.datasets = kept[:1]
    new.assessment.bootstrap = min(new.assessment.bootstrap, 20)
    new.assessment.batch_size, new.assessment.workers = 4, 0
    subs.append("bootstrap: at most 20 replicates")
    if new.transfer is not None:
        t = new.transfer
        if t.dataset.name.lower() != "synthetic":
            subs.append(f"transfer dataset {t.dataset.name}: replaced by the built-in "
                        f"known-order set ({', '.join(IQA_PHOTOS)} at {IQA_SIZE} px, "
                        f"{' and '.join(IQA_DISTORTIONS)})")
        t.dataset = _iqa()
        t.repeats, t.epochs = 1, 1
        subs.append("transfer: 1 repeat of 1 epoch")
    new.launcher.type, new.launcher.gpus_per_cell = "local", 1
    r = new.report
    r.crop_size, r.crop_images = 24, 1
    if new.recovery is not None:
        new.recovery.size, new.recovery.steps = 64, 2
        subs.append("recovery test: 64 px, 2 steps")
    new.rehearsal = RehearsalInfo(source=str(cfg.source or ""), substitutions=subs)
    return new


def run_rehearsal(cfg: StudyConfig, out: str | Path, opts=None) -> dict:
    """Rehearse ``cfg`` into ``out``: every stage of :func:`optiqa.study.runner.run_study` on
    the shrunk config, with random weights allowed (and recorded) for this process only."""
    from optiqa.core import rehearsal
    from optiqa.study.runner import StudyOptions, run_study

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shrunk = rehearsal_config(cfg, out)
    opts = opts or StudyOptions()
    opts.launcher, opts.device = "local", "cpu"
    old = os.environ.get(rehearsal.ENV)
    from optiqa.study.folder import StudyFolder

    os.environ[rehearsal.ENV] = str(StudyFolder(out.resolve()).rehearsal_record)
    try:
        return run_study(shrunk, out, opts)
    finally:
        if old is None:
            os.environ.pop(rehearsal.ENV, None)
        else:
            os.environ[rehearsal.ENV] = old
