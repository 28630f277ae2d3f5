"""The transfer stage: the discriminators' backbones reused for IQA, and zero-shot scores.

For each backbone and initialisation of ``transfer`` (``imagenet``, ``random``, and ``gan``: the
backbone stages a cell's trained discriminator holds) an IQA model is trained and tested on
content splits (:mod:`optiqa.transfer.experiment`); with ``transfer.zero_shot`` every trained
discriminator's logit is also correlated with the human scores as it is
(:mod:`optiqa.transfer.zeroshot`). Results go through the study's results store (a cache keyed by
the whole configuration) and are written as ``transfer/<name>.json``, the truth the report reads.
"""
from __future__ import annotations

from optiqa.study import names
from optiqa.study.assessment import load_iqa_dataset
from optiqa.study.folder import StudyFolder, write_json


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


def run_transfer_stage(folder: StudyFolder, cfg, cells, store, device="cpu",
                       progress=False) -> dict:
    """IQA models on each backbone per initialisation, and zero-shot scores of every trained
    discriminator; ``{name: result}``. Cached in the store (a rerun recomputes nothing)."""
    from optiqa.transfer.experiment import TransferOptions, run_transfer
    from optiqa.transfer.fitting import TrainSettings
    from optiqa.transfer.zeroshot import run_zero_shot

    t = cfg.transfer
    if t is None:
        return {}
    ds = load_iqa_dataset(t.dataset)
    results = {}
    for name, bb, init in transfer_experiments(cfg, folder, cells):
        opts = TransferOptions(backbone=bb, init=init, kind=t.kind, mode=t.mode,
                               repeats=t.repeats, seed=cfg.seed,
                               train=TrainSettings(epochs=t.epochs, device=device))
        r = run_transfer(opts, ds, store=store, progress=progress)
        r["study_name"] = name
        write_json(folder.transfer(name), r, drop_volatile=True)
        results[name] = r
    for name in zero_shot_names(cfg, folder, cells):
        c = next(c for c in cells if c.name == names.parse_zeroshot(name))
        r = run_zero_shot(folder.run(c.name).root, ds, device=device, seed=cfg.seed,
                          store=store, n_boot=cfg.assessment.bootstrap, progress=progress)
        r["study_name"] = name
        write_json(folder.transfer(name), r, drop_volatile=True)
        results[name] = r
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
