"""The report's answer, one sentence per task and setting, generated from the numbers.

For one setting (say: no discriminator) the evaluator panel gives one rank agreement per
evaluator (Spearman's rho between a loss's quality as an IQA model and the quality of the models
it trained); :class:`~optiqa.stats.permutation.PanelAgreement` holds them, their median and the
permutation test of the median. The verdict:

- ``undefined``: no evaluator could rank at least 3 losses;
- ``descriptive``: fewer than 5 losses (k < 5): no order can reach p < 0.05 (the smallest
  two-sided p is 2/k!), so the sentence describes and does not conclude;
- ``agreement`` / ``reversal``: two-sided permutation p <= ``alpha`` and the median rho > 0 / < 0;
- ``no evidence``: otherwise.

The sentence names the verdict, how many evaluators rank the losses with / against the IQA
ranking, the median rho, its p and how it was computed, and the caveats (k losses, seeds per
cell, test images).
"""
from __future__ import annotations

from dataclasses import dataclass

from optiqa.stats.permutation import PanelAgreement, format_p
from optiqa.stats.rows.base import Row

ALPHA = 0.05
VERDICTS = ("agreement", "reversal", "no evidence", "descriptive", "undefined")


@dataclass(frozen=True)
class Headline(Row):
    """One sentence of the answer and the numbers it was generated from; in ``analysis.json``
    with the setting group it answers for (``scope``, ``group``, ``grid``: see
    :func:`optiqa.stats.groups.setting_groups`)."""

    task: str
    setting: str            # human label, e.g. "without a discriminator"
    verdict: str            # one of VERDICTS
    sentence: str
    k: int
    n_evaluators: int       # evaluators with a defined rho
    n_positive: int
    n_negative: int
    median: float | None
    p_value: float | None
    method: str
    n_seeds: int
    n_images: int
    scope: str | None = None
    group: str | None = None
    grid: str | None = None


def verdict(panel: PanelAgreement, alpha: float = ALPHA) -> str:
    t = panel.test
    if t.p_value is None or panel.median is None:
        return "undefined"
    if t.descriptive_only:
        return "descriptive"
    if t.p_value <= alpha and panel.median != 0:
        return "agreement" if panel.median > 0 else "reversal"
    return "no evidence"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def caveats(k: int, n_seeds: int, n_images: int) -> str:
    seeds = ("1 seed per cell (seed-to-seed variation not measured)"
             if n_seeds <= 1 else f"{n_seeds} seeds per cell, averaged")
    losses = f"{k} loss{'' if k == 1 else 'es'}"
    return f"{losses}, {seeds}, {_plural(n_images, 'test image')}"


def headline(panel: PanelAgreement, task: str, setting: str, n_seeds: int = 1,
             n_images: int = 0, alpha: float = ALPHA) -> Headline:
    """The sentence for one task and setting (``setting`` as it should read, lower case)."""
    v = verdict(panel, alpha)
    t = panel.test
    k = panel.k
    lead = f"{setting[0].upper()}{setting[1:]} ({task})"
    n = panel.n_defined
    agree = f"{panel.n_positive} of {n} evaluators agree with the IQA ranking"
    against = f"{panel.n_negative} {'reverses' if panel.n_negative == 1 else 'reverse'} it"
    counts = f"{agree}, {against}"
    if v == "undefined":
        body = f"the rank agreement is undefined ({t.reason})"
    else:
        how = "exact permutation test" if t.method == "exact" else \
            f"Monte Carlo permutation test, ±{t.standard_error:.2g}"
        stats = f"median rho {panel.median:+.2f}, p {format_p(t.p_value)} ({how}, k = {k})"
        if v == "agreement":
            body = (f"the better a loss ranks as an IQA model, the better the models it trains: "
                    f"{counts}; {stats}")
        elif v == "reversal":
            body = (f"the better a loss ranks as an IQA model, the worse the models it trains: "
                    f"{counts}; {stats}")
        elif v == "descriptive":
            body = (f"descriptive only (with k = {k} losses the smallest possible p is "
                    f"{format_p(t.smallest_p)}): {counts}; median rho {panel.median:+.2f}")
        else:
            body = f"no evidence either way: {counts}; {stats}"
    sentence = f"{lead}: {body}. Caveats: {caveats(k, n_seeds, n_images)}."
    return Headline(task, setting, v, sentence, k, n, panel.n_positive, panel.n_negative,
                    panel.median, t.p_value, t.method, n_seeds, n_images)


def setting_label(scope: str, group: str, n_settings: int = 1,
                  weight_name: str = "adversarial weight") -> str:
    """``none`` -> 'without a discriminator', ``patch@0.03`` -> 'with the patch discriminator
    at adversarial weight 0.03' (``weight_name``: what the number is, e.g. a gradient ratio),
    pooled ``with`` -> 'with a discriminator (pooled over N settings)'."""
    if scope == "adversarial":
        return ("without a discriminator" if group == "without" else
                f"with a discriminator (pooled over {_plural(n_settings, 'setting')})")
    if group == "none":
        return "without a discriminator"
    disc, _, weight = group.partition("@")
    return f"with the {disc} discriminator at {weight_name} {weight}"
