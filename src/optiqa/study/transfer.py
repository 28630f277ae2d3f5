"""The transfer stage: the discriminators' backbones reused for IQA, and zero-shot scores.

For each backbone and initialisation of ``transfer`` (``imagenet``, ``random``, and ``gan``: the
backbone stages a cell's trained discriminator holds) an IQA model is trained and tested on
content splits (:mod:`optiqa.transfer.experiment`); with ``transfer.zero_shot`` every trained
discriminator's logit is also correlated with the human scores as it is
(:mod:`optiqa.transfer.zeroshot`). Results are written as ``transfer/<name>.json``, the truth the
report reads, and indexed in the study's results store (a cache keyed by the whole
configuration). On the CPU the experiments run in the CPU pool (:mod:`optiqa.study.pool`), one
per process and torch thread, without the store (the runner alone writes it); the stage then
finds each result on disk under its current key and only indexes it.
"""
from __future__ import annotations

from optiqa.study import names
from optiqa.study.assessment import load_iqa_dataset
from optiqa.study.folder import StudyFolder, read_json, write_json


def transfer_experiments(cfg, folder: StudyFolder, cells) -> list[tuple[str, str, str]]:
    """``(name, backbone, init)`` of every transfer experiment; ``gan`` expands to one per cell
    whose trained discriminator sits on that backbone."""
    t = cfg.transfer
    out = []
    for bb in t.backbones:
        for init in t.inits:
            if init != "gan":
                out.append((names.transfer_name(t.kind, bb, init), bb, init))
                continue
            for c in cells:
                if c.backbone == bb and folder.run(c.name).latest("d") is not None:
                    out.append((names.transfer_name(t.kind, bb, init, c.name), bb,
                                f"gan:{folder.run(c.name).root}"))
    return out


class OnDisk:
    """``transfer/<name>.json`` as a result computed earlier (by this or another process): the
    ``known`` argument of :func:`~optiqa.transfer.experiment.run_transfer` and
    :func:`~optiqa.transfer.zeroshot.run_zero_shot`, used only under the result's current
    key (which hashes everything that decides it)."""

    def __init__(self, folder: StudyFolder, name: str):
        self.path, self.hit = folder.transfer(name), False

    def __call__(self, key: str) -> dict | None:
        result = read_json(self.path)
        if result is not None and result.get("key") == key:
            self.hit = True
            return result
        return None


def _finish(folder: StudyFolder, name: str, result: dict, known: OnDisk) -> tuple[dict, str]:
    result["study_name"] = name
    write_json(folder.transfer(name), result, drop_volatile=True)
    return result, "done" if known.hit or result.get("from_store") else "computed"


def transfer_one(folder: StudyFolder, cfg, ds, name: str, backbone: str, init: str, store,
                 device="cpu", progress=False) -> tuple[dict, str]:
    """One transfer experiment (computed, or found in the store or on disk) written to
    ``transfer/<name>.json``; ``(result, 'computed' | 'done')``."""
    from optiqa.transfer.experiment import TransferOptions, run_transfer
    from optiqa.transfer.fitting import TrainSettings

    t = cfg.transfer
    opts = TransferOptions(backbone=backbone, init=init, kind=t.kind, mode=t.mode,
                           repeats=t.repeats, seed=cfg.seed,
                           train=TrainSettings(epochs=t.epochs, device=device))
    known = OnDisk(folder, name)
    return _finish(folder, name, run_transfer(opts, ds, store=store, progress=progress,
                                              known=known), known)


def zero_shot_one(folder: StudyFolder, cfg, ds, name: str, cell, store, device="cpu",
                  progress=False) -> tuple[dict, str]:
    """The zero-shot scores of ``cell``'s trained discriminator, as :func:`transfer_one`."""
    from optiqa.transfer.zeroshot import run_zero_shot

    known = OnDisk(folder, name)
    return _finish(folder, name, run_zero_shot(
        folder.run(cell.name).root, ds, device=device, seed=cfg.seed, store=store,
        n_boot=cfg.assessment.bootstrap, progress=progress, known=known), known)


def run_transfer_stage(folder: StudyFolder, cfg, cells, store, device="cpu",
                       progress=False) -> dict:
    """IQA models on each backbone per initialisation, and zero-shot scores of every trained
    discriminator; ``{name: result}``. Cached in the store (a rerun recomputes nothing)."""
    t = cfg.transfer
    if t is None:
        return {}
    ds = load_iqa_dataset(t.dataset)
    results = {}
    for name, bb, init in transfer_experiments(cfg, folder, cells):
        results[name] = transfer_one(folder, cfg, ds, name, bb, init, store, device,
                                     progress)[0]
    for name in zero_shot_names(cfg, folder, cells):
        c = next(c for c in cells if c.name == names.parse_zeroshot(name))
        results[name] = zero_shot_one(folder, cfg, ds, name, c, store, device, progress)[0]
    return results


def zero_shot_names(cfg, folder: StudyFolder, cells) -> list[str]:
    """``zeroshot__<cell>`` for every trained cell with a discriminator (when asked for)."""
    if cfg.transfer is None or not cfg.transfer.zero_shot:
        return []
    return [names.zeroshot_name(c.name) for c in cells
            if c.adversarial and folder.run(c.name).latest("d") is not None]


def run_stage(ctx) -> list[str]:
    """The stage as the runner calls it: the names of the experiments."""
    return sorted(run_transfer_stage(ctx.plan.folder, ctx.plan.cfg, ctx.cells, ctx.store,
                                     ctx.device, ctx.opts.progress))
