"""A CPU time estimate for ``optiqa study --dry-run`` when no GPU step time is given.

The dry run knows how many training steps remain per run but not how long one takes. Without a
measured GPU step (``--step-time``, ``launcher.step_seconds``) it times steps of the remaining
runs on this machine's CPU: the runs are grouped by what determines a step's cost (generator,
discriminator, objective, crop size, precision), and for each group a :class:`Trainer` is built
from the run's own config and one step of each of its stages (the L1-only stage and the
perceptual one) is timed after one untimed warm-up step, most common kinds first, within a
time budget (10 s), on a
random batch of the config's size, or of **one** image when the batch is larger than 8, the time
then multiplied by the batch size (a CPU step grows about linearly with the batch; a rough
figure, and the dry run says so). Groups that cannot be built here (pretrained weights not
on this machine) or that the time budget leaves out get the mean of the measured groups.
"""
from __future__ import annotations

import copy
import time

from optiqa.core.hashing import stable_hash

COST_KEYS = ("network_g", "network_d", "scale")
TRAIN_COST_KEYS = ("bf16", "channels_last", "compile")
MEASURED_BATCH = 8   # batches up to this size are timed as they are; larger ones at batch 1


def cost_signature(config: dict) -> str:
    """What a training step's cost depends on, hashed: runs differing only in seed, loss
    weights, learning rate or length share it."""
    train = config.get("train") or {}
    data = ((config.get("datasets") or {}).get("train") or {})
    gan = train.get("gan_opt") or {}
    uses_gan = bool(gan.get("weight")) and config.get("network_d") is not None
    return stable_hash({**{k: config.get(k) for k in COST_KEYS},
                        "train": {k: train.get(k) for k in TRAIN_COST_KEYS},
                        "fidelity": (train.get("fidelity_opt") or {}).get("metric"),
                        "gan": [gan.get("type"), bool(gan.get("r1_weight")),
                                gan.get("d_steps", 1)] if uses_gan else None,
                        "batch": [data.get("gt_size"), data.get("batch_size")]})


def _stage_seconds(config: dict, repeats: int = 1) -> dict[str, float]:
    """Seconds of one step of each stage of ``config`` on the CPU: the fastest of ``repeats``
    timed steps (the least disturbed by other processes) at the config's batch, or at batch 1
    times the batch when that is larger than :data:`MEASURED_BATCH`."""
    import torch

    from optiqa.train.config import load_train_config
    from optiqa.train.trainer import Trainer

    raw = copy.deepcopy(config)
    raw.setdefault("path", {})["pretrain_network_g"] = None  # its weights may not exist yet
    raw["path"]["pretrain_network_d"] = None
    cfg = load_train_config(raw)
    trainer = Trainer(cfg, "cpu", datasets={"train": None, "val": None}, progress=False)
    gs, scale, size = cfg.datasets.train.gt_size, cfg.scale, cfg.datasets.train.batch_size
    n = size if size <= MEASURED_BATCH else 1
    gen = torch.Generator().manual_seed(0)
    batch = {"gt": torch.rand(n, 3, gs, gs, generator=gen)}
    batch["lq"] = torch.rand(n, 3, gs // scale, gs // scale, generator=gen)
    t = cfg.train
    stages = {}
    if t.pixel_only_iter > 0:
        stages["pixel_only"] = 1
    if t.pixel_only_iter < t.total_iter:
        stages["perceptual"] = t.pixel_only_iter + 1
    out = {}
    for stage, iteration in stages.items():
        trainer.train_step(iteration, batch)  # warm-up: allocations, lazy caches
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            trainer.train_step(iteration, batch)
            best = min(best, time.perf_counter() - t0)
        out[stage] = best * size / n
    return out


def _remaining_by_stage(config: dict, remaining: int) -> dict[str, int]:
    train = config.get("train") or {}
    total = int(train.get("total_iter", remaining))
    pixel_only = int(train.get("pixel_only_iter", 0) or 0)
    done = total - remaining
    pix = max(0, pixel_only - done)
    return {"pixel_only": pix, "perceptual": remaining - pix}


def cpu_estimate(jobs: dict, rows: list[dict], budget_seconds: float = 10.0) -> dict:
    """``{'cpu_hours', 'measured', 'groups', 'notes'}`` for the runs of ``rows`` (dry-run rows
    with ``remaining_steps``); ``jobs``: run name -> :class:`~optiqa.study.training.TrainJob`."""
    from optiqa.core.errors import OptiqaError

    groups: dict[str, list[str]] = {}
    for r in rows:
        if r["remaining_steps"] > 0 and r["run"] in jobs:
            groups.setdefault(cost_signature(jobs[r["run"]].config), []).append(r["run"])
    measured, notes = {}, []
    start = time.perf_counter()
    # the most common kinds first: a dry run stays quick, and the budget covers most steps
    for sig, names in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        if time.perf_counter() - start > budget_seconds:
            notes.append(f"time budget of {budget_seconds:.0f} s spent: "
                         f"{len(groups) - len(measured)} kind(s) of run not measured")
            break
        try:
            measured[sig] = _stage_seconds(jobs[names[0]].config)
        except (OptiqaError, RuntimeError, MemoryError) as e:
            notes.append(f"{names[0]}: not measured ({str(e).splitlines()[0][:160]})")
    if not measured:
        return {"cpu_hours": None, "measured": 0, "groups": len(groups), "notes": notes}
    flat = [s for m in measured.values() for s in m.values()]
    fallback = sum(flat) / len(flat)
    seconds = 0.0
    for sig, names in groups.items():
        per_stage = measured.get(sig, {})
        for name in names:
            row = next(r for r in rows if r["run"] == name)
            for stage, n in _remaining_by_stage(jobs[name].config,
                                                row["remaining_steps"]).items():
                seconds += n * per_stage.get(stage, fallback)
    if len(measured) < len(groups):
        notes.append(f"{len(groups) - len(measured)} kind(s) of run counted at the mean "
                     f"measured step ({fallback:.3f} s)")
    return {"cpu_hours": seconds / 3600, "measured": len(measured), "groups": len(groups),
            "notes": notes}
