"""The adversarial/fidelity gradient ratio of every GAN cell, read from its run folder, as rows
for the report's table (:mod:`optiqa.report.gradient_ratios`, absolute and relative adversarial
weights alike), and the sentence that says what the study's adversarial weights are.

Each GAN run records, before its first adversarial step, ``ratio = lambda * g_adv / g_ref`` with
``g_adv = ||grad_theta L_adv||`` and ``g_ref = ||grad_theta (w_p L1 + w_f M)||`` over the
generator's parameters (:mod:`optiqa.train.gradient_ratio`, ``<run>/gradient_ratio.json``). With
one absolute lambda the ratio differs from loss to loss by the losses' gradient scales; with
``adversarial.relative`` it equals the cell's weight by construction and lambda differs instead.
The table shows both, so that a reader sees what a weight meant for each loss.
"""
from __future__ import annotations

RELATIVE = "adversarial/fidelity gradient ratio"
ABSOLUTE = "adversarial weight"


def weight_name(cfg) -> str:
    """What a study's adversarial weights are: ratios (``adversarial.relative``) or lambdas."""
    return RELATIVE if cfg.adversarial.relative else ABSOLUTE


def weight_sentence(cfg) -> str:
    """The protocol sentence of the adversarial weight, generated from the config."""
    if cfg.adversarial.relative:
        return ("each adversarial weight is the ratio r = lambda ||grad L_adv|| / ||grad L_fid|| "
                "of the gradient norms w.r.t. the generator's parameters at the start of "
                "adversarial training (train.gan_opt.relative); every cell's lambda was set from "
                "norms measured on one fixed batch, so r is the same for every fidelity loss")
    return ("each adversarial weight is lambda itself, the same for every fidelity loss; the "
            "gradient ratio it gave each loss at the start is in the gradient ratio table")


def ratio_rows(folder, cells) -> list:
    """One :class:`~optiqa.report.gradient_ratios.GradientRatioRow` per GAN cell, with its run's
    record (``<run>/gradient_ratio.json``) where it has one."""
    return [ratio_row(c, folder.run(c.name).gradient_ratio_record())
            for c in cells if c.adversarial]


def ratio_row(cell, record: dict | None):
    """A GAN cell and its run's gradient ratio record (None: its run has none yet) as the
    report's :class:`~optiqa.report.gradient_ratios.GradientRatioRow`."""
    from optiqa.report.gradient_ratios import GradientRatioRow
    from optiqa.train.gradient_ratio import GradientRatio

    row = GradientRatioRow(cell.name, cell.task, cell.fidelity, cell.discriminator,
                           cell.adversarial_weight, cell.relative)
    if record is not None:
        g = GradientRatio.from_json(record)
        row.recorded = True
        row.adversarial_weight, row.reference_norm = g.adversarial_weight, g.reference_norm
        row.adversarial_norm, row.ratio = g.adversarial_norm, g.ratio
        row.iteration, row.batch_size = g.iteration, g.batch_size
    return row
