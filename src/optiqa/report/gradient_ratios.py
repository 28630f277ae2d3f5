"""The gradient ratio table: the adversarial/fidelity gradient ratio every GAN cell measured at
the start of its adversarial training (:mod:`optiqa.train.gradient_ratio`), one
:class:`GradientRatioRow` per cell as the study gathers them (:mod:`optiqa.study.gradient_ratios`).

With one absolute lambda the ratio ``lambda * g_adv / g_fid`` differs from loss to loss by the
losses' gradient scales; with ``adversarial.relative`` it equals the cell's weight by
construction and lambda differs instead. The table shows both, and its protocol says how far the
varying one spreads over the losses of one discriminator and weight.
"""
from __future__ import annotations

from dataclasses import dataclass

from optiqa.report.document import Table


@dataclass
class GradientRatioRow:
    """One GAN cell and its run's record (the record's numbers None while its run has none):
    ``weight`` as configured, ``relative`` whether it is a ratio, ``adversarial_weight`` the
    lambda in use, the norms ``g_fid`` (``reference_norm``) and ``g_adv``, their ``ratio``, the
    iteration and batch size of the measurement."""

    cell: str
    task: str
    fidelity: str
    discriminator: str
    weight: float
    relative: bool
    recorded: bool = False
    adversarial_weight: float | None = None
    reference_norm: float | None = None
    adversarial_norm: float | None = None
    ratio: float | None = None
    iteration: int | None = None
    batch_size: int | None = None


def spread_sentence(rows: list[GradientRatioRow]) -> str:
    """How far the ratio (absolute weights) or lambda (relative) spreads over the losses of one
    discriminator and weight, generated from the records."""
    groups: dict = {}
    for r in rows:
        if r.ratio is not None:
            key = (r.task, r.discriminator, r.weight, r.relative)
            groups.setdefault(key, []).append(r.adversarial_weight if r.relative else r.ratio)
    wide = [(k, v) for k, v in groups.items() if len(v) > 1 and min(v) > 0]
    if not wide:
        return ""
    (task, disc, weight, relative), values = max(wide, key=lambda kv: max(kv[1]) / min(kv[1]))
    what = "lambda" if relative else "the gradient ratio"
    at = f"ratio {weight:g}" if relative else f"weight {weight:g}"
    return (f" Widest spread: with {disc} at {at} ({task}), {what} ranges from "
            f"{min(values):.3g} to {max(values):.3g} over {len(values)} fidelity losses "
            f"(a factor of {max(values) / min(values):.3g}).")


def gradient_ratio_table(rows: list[GradientRatioRow], weights: str) -> Table | None:
    """The table, None without GAN cells; ``weights``: the study's sentence of what its
    adversarial weights are (:func:`optiqa.study.gradient_ratios.weight_sentence`)."""
    if not rows:
        return None
    body = [[r.cell, r.fidelity, r.discriminator, r.weight, "ratio" if r.relative else "lambda",
             r.adversarial_weight, r.reference_norm, r.adversarial_norm, r.ratio, r.iteration,
             r.batch_size] for r in rows]
    missing = sum(not r.recorded for r in rows)
    protocol = (
        "Measured by each run once, just before its first adversarial step, at the starting "
        "generator and discriminator on that iteration's training batch (fixed by the run's "
        "seed), in float32: g_fid = ||grad (w_p L1 + w_f M)||, g_adv = ||grad L_adv|| "
        "(unweighted), gradients w.r.t. every trainable parameter of G; ratio = lambda g_adv / "
        "g_fid (optiqa.train.gradient_ratio). A start value: D's head is untrained then. "
        f"Weights: {weights}." + spread_sentence(rows)
        + (f" {missing} cell(s) without a record (not trained yet, or trained before runs "
           "recorded it): '-'." if missing else ""))
    return Table("Adversarial/fidelity gradient ratio at the start of training",
                 ["model", "fidelity loss", "discriminator", "weight", "weight is", "lambda",
                  "g_fid", "g_adv", "ratio", "at iteration", "batch"], body,
                 csv_name="gradient_ratio", protocol=protocol, digits=4)
