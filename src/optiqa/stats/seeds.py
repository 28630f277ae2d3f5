"""Training seeds in the asymmetry analysis (``train.seeds``): replicates of one setting.

A study that trains every cell with several seeds gives :mod:`optiqa.stats.asymmetry` one
:class:`~optiqa.stats.asymmetry.Cell` per run, each with its ``seed`` and its ``unit`` (the
setting name every replicate shares). :func:`collapse` turns them into one cell per unit whose
per-image score is the mean over its seeds, and keeps the per-seed scores, so that

- every statistic describes the loss (the mean over seeds), not one network;
- the bootstrap resamples seeds within each unit together with the test images and the IQA
  contents (:func:`resample_seeds`; :func:`optiqa.stats.replicates.seed_weights`);
- :func:`spread_rows` gives, per task, setting and evaluator, the seed-to-seed spread next to the
  between-loss spread and the intraclass correlation (:func:`optiqa.stats.replicates.seed_spread`).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from optiqa.core.errors import InputError
from optiqa.stats.replicates import seed_spread, seed_weights


def has_seeds(opt) -> bool:
    return any(c.seed is not None for c in opt.cells)


def collapse(opt):
    """``(opt over units, {(unit, evaluator): (seeds, images) scores}, n_seeds)``.

    Without seeds ``opt`` is returned as it is (``n_seeds`` 1). A unit's score for an evaluator
    exists only when every replicate has it; replicates of one unit must agree in everything but
    the seed."""
    if not has_seeds(opt):
        return opt, {}, 1
    groups: dict = {}
    for c in opt.cells:
        groups.setdefault((c.task, c.fidelity, c.setting), []).append(c)
    cells, scores, per_seed = [], {}, {}
    for members in groups.values():
        first = members[0]
        unit = first.unit or first.name
        if any((c.unit or c.name) != unit for c in members):
            raise InputError(f"replicates {', '.join(c.name for c in members)} name different "
                             "units")
        cells.append(replace(first, name=unit, seed=None))
        scores[unit] = {}
        for e in opt.evaluators:
            got = [opt.scores.get(c.name, {}).get(e.name) for c in members]
            if any(g is None for g in got):
                continue
            stacked = np.stack([np.asarray(g, np.float64) for g in got])
            scores[unit][e.name] = stacked.mean(axis=0)
            per_seed[(unit, e.name)] = stacked
    n_seeds = max(len(m) for m in groups.values())
    return replace(opt, cells=cells, scores=scores), per_seed, n_seeds


def resample_seeds(reps: np.ndarray, counts: np.ndarray, judged, per_seed: dict,
                   rng: np.random.Generator) -> None:
    """Replace the image-only replicates ``reps[:, j]`` of every judged (unit, evaluator) pair
    with replicates that also draw the unit's seeds with replacement (in place).

    ``counts``: ``(n_boot, n_images)`` multiplicities of the shared image resample. Replicate b
    of a unit is ``sum_s w_bs * (counts_b . y_s) / (n S)``, with ``w_b`` the seed multiplicities,
    drawn once per unit and shared by all its evaluators (they judge the same networks)."""
    n_boot, n = counts.shape
    weights: dict = {}
    for j, (c, e) in enumerate(judged):
        ys = per_seed.get((c.name, e.name))
        if ys is None or ys.shape[0] < 2:
            continue
        s = ys.shape[0]
        if c.name not in weights:
            weights[c.name] = seed_weights(s, n_boot, rng)
        oriented = -ys if e.lower_better else ys
        per_seed_means = counts @ oriented.T / n                 # (n_boot, seeds)
        reps[:, j] = (weights[c.name] * per_seed_means).sum(axis=1) / s


def spread_rows(units_opt, per_seed: dict) -> list:
    """Per task, adversarial setting and evaluator: ICC(1,1), ICC(1,S), the F test, the
    between-loss SD and the seed-to-seed SD over the losses the evaluator may judge (oriented
    qualities: mean over the test images of each seed's model), as
    :class:`~optiqa.stats.rows.SpreadRow`."""
    from optiqa.stats.rows import SpreadRow

    rows = []
    tasks = dict.fromkeys(c.task for c in units_opt.cells)
    for task in tasks:
        settings = dict.fromkeys(c.setting for c in units_opt.cells if c.task == task)
        for setting in settings:
            cells = [c for c in units_opt.cells if c.task == task and c.setting == setting]
            for e in units_opt.evaluators:
                judged = [c for c in cells if units_opt.exclusion(c, e) is None
                          and (c.name, e.name) in per_seed]
                sizes = {per_seed[(c.name, e.name)].shape[0] for c in judged}
                losses = [c.fidelity for c in judged]
                if len(sizes) > 1:
                    rows.append(SpreadRow(task, setting, e.name, losses, len(judged), None,
                                          reason="unequal seeds per loss"))
                    continue
                sign = -1.0 if e.lower_better else 1.0
                y = np.array([sign * per_seed[(c.name, e.name)].mean(axis=1) for c in judged]
                             ).reshape(len(judged), sizes.pop() if sizes else 0)
                rows.append(SpreadRow.of(task, setting, e.name, losses, seed_spread(y)))
    return rows
