"""The adversarial/fidelity gradient ratio of every GAN cell, read from its run folder, for the
report (absolute and relative adversarial weights alike).

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


def ratio_rows(folder, cells) -> list[dict]:
    """One row per GAN cell: its record (None when its run has none yet)."""
    rows = []
    for c in cells:
        if not c.adversarial:
            continue
        rec = folder.run(c.name).gradient_ratio_record()
        rows.append({"cell": c.name, "task": c.task, "fidelity": c.fidelity,
                     "discriminator": c.discriminator, "weight": c.adversarial_weight,
                     "relative": c.relative, "record": rec})
    return rows


def spread_sentence(rows: list[dict]) -> str:
    """How far the ratio (absolute weights) or lambda (relative) spreads over the losses of one
    discriminator and weight, generated from the records."""
    groups: dict = {}
    for r in rows:
        rec = r["record"]
        if rec and rec.get("ratio") is not None:
            key = (r["task"], r["discriminator"], r["weight"], r["relative"])
            value = rec["adversarial_weight"] if r["relative"] else rec["ratio"]
            groups.setdefault(key, []).append(value)
    wide = [(k, v) for k, v in groups.items() if len(v) > 1 and min(v) > 0]
    if not wide:
        return ""
    (task, disc, weight, relative), values = max(wide, key=lambda kv: max(kv[1]) / min(kv[1]))
    what = "lambda" if relative else "the gradient ratio"
    at = f"ratio {weight:g}" if relative else f"weight {weight:g}"
    return (f" Widest spread: with {disc} at {at} ({task}), {what} ranges from "
            f"{min(values):.3g} to {max(values):.3g} over {len(values)} fidelity losses "
            f"(a factor of {max(values) / min(values):.3g}).")


def gradient_ratio_table(folder, cfg, cells):
    """The report's table (:class:`optiqa.report.document.Table`), None without GAN cells."""
    from optiqa.report.document import Table

    rows = ratio_rows(folder, cells)
    if not rows:
        return None
    body = []
    for r in rows:
        rec = r["record"] or {}
        body.append([r["cell"], r["fidelity"], r["discriminator"], r["weight"],
                     "ratio" if r["relative"] else "lambda", rec.get("adversarial_weight"),
                     rec.get("reference_norm"), rec.get("adversarial_norm"), rec.get("ratio"),
                     rec.get("iteration"), rec.get("batch_size")])
    missing = sum(r["record"] is None for r in rows)
    protocol = (
        "Measured by each run once, just before its first adversarial step, at the starting "
        "generator and discriminator on that iteration's training batch (fixed by the run's "
        "seed), in float32: g_fid = ||grad (w_p L1 + w_f M)||, g_adv = ||grad L_adv|| "
        "(unweighted), gradients w.r.t. every trainable parameter of G; ratio = lambda g_adv / "
        "g_fid (optiqa.train.gradient_ratio). A start value: D's head is untrained then. "
        f"Weights: {weight_sentence(cfg)}." + spread_sentence(rows)
        + (f" {missing} cell(s) without a record (not trained yet, or trained before runs "
           "recorded it): '-'." if missing else ""))
    return Table("Adversarial/fidelity gradient ratio at the start of training",
                 ["model", "fidelity loss", "discriminator", "weight", "weight is", "lambda",
                  "g_fid", "g_adv", "ratio", "at iteration", "batch"], body,
                 csv_name="gradient_ratio", protocol=protocol, digits=4)
