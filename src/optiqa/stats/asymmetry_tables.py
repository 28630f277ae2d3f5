"""The asymmetry analysis' tables: rows per evaluator and setting, per pooled group, per panel,
per contrast, the agreement among evaluators and the paired tests (:mod:`optiqa.stats.asymmetry`).
"""
from __future__ import annotations

import math

import numpy as np

from optiqa.core.errors import InputError
from optiqa.stats import correlation, ranking
from optiqa.stats.asymmetry_base import (Cell, OptimizationScores, _Assessed, _ci, _num, _seed,
                                         agreement_fields)
from optiqa.stats.groups import contrast_confound, contrast_pairs
from optiqa.stats.multiplicity import wilcoxon_family, wilcoxon_smallest_p
from optiqa.stats.ranking import rank_agreement
from optiqa.stats.rows import (AgreementPoint, CellLeftOut, Contrast, EvaluatorAgreement,
                               Judgment, LeaveOneOut, LeftOut, OptimizationRow, PairedTest,
                               Pairwise, PanelRow, RankAgreement, SweepCurve, WeightSweep)


# ---------------------------------------------------------------------------------------------
# groups of settings
# ---------------------------------------------------------------------------------------------
# setting_groups (per grid) and the contrasts' one-factor check: optiqa.stats.groups


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------
def _optimization_rows(opt, stats, level) -> list[OptimizationRow]:
    rows = []
    for c in opt.cells:
        for e in opt.evaluators:
            sign = -1.0 if e.lower_better else 1.0
            point, reps = stats.get((c.name, e.name), (math.nan, None))
            excl = opt.exclusion(c, e)
            # an excluded judgment is omitted (no number) and marked, as in every table
            rows.append(OptimizationRow(
                c.name, c.task, c.fidelity, c.setting, c.discriminator, c.adversarial_weight,
                e.name, len(opt.images), _num(sign * point), _ci(reps, level, sign),
                _num(point), _ci(reps, level), None if excl is None else Judgment(*excl)))
    return rows


def _agreement_rows(opt, groups, stats, asm: _Assessed, level,
                    seed: int = 0) -> tuple[list, dict, list]:
    by_key = {(c.task, c.fidelity, c.setting): c for c in opt.cells}
    rows, kept, panels = [], {}, {}
    for g in groups:
        fidelities = g.fidelity        # the grid's metrics: a full cross product
        for e in opt.evaluators:
            left = {"circular": [], "missing_scores": [], "not_trained": [], "not_assessed": []}
            entries = []
            for f in fidelities:
                cells = [by_key.get((g.task, f, s)) for s in g.settings]
                kinds = {k[0] for c in cells if c is not None
                         for k in [opt.exclusion(c, e)] if k is not None}
                if None in cells:
                    left["not_trained"].append(f)         # not in every setting of the group
                elif "circular" in kinds:
                    left["circular"].append(f)
                elif kinds:
                    left["missing_scores"].append(f)
                elif f in asm.not_assessed:
                    left["not_assessed"].append(f)
                else:
                    entries.append((f, cells))
            q = np.array([np.mean([stats[(c.name, e.name)][0] for c in cells])
                          for _, cells in entries])
            a = np.array([asm.quality[f] for f, _ in entries])
            q_reps = a_reps = None
            if entries and all(stats[(c.name, e.name)][1] is not None
                               for _, cells in entries for c in cells) \
                    and all(asm.reps[f] is not None for f, _ in entries):
                q_reps = np.stack([np.mean([stats[(c.name, e.name)][1] for c in cells], axis=0)
                                   for _, cells in entries], axis=1)
                a_reps = np.stack([asm.reps[f] for f, _ in entries], axis=1)
            ag = rank_agreement(q, a, q_reps, a_reps)
            if entries:     # the panel's median test (below) needs each evaluator's vector
                panels.setdefault((g.task, g.grid, g.scope, g.group), {})[e.name] = {
                    f: float(q[i]) for i, (f, _) in enumerate(entries)}
            sign = -1.0 if e.lower_better else 1.0
            points = [AgreementPoint(
                f, [c.name for c in cells], float(q[i]),
                None if q_reps is None else _ci(q_reps[:, i], level), float(sign * q[i]),
                float(a[i]), None if a_reps is None else _ci(a_reps[:, i], level))
                for i, (f, cells) in enumerate(entries)]
            rows.append(RankAgreement(**vars(g), evaluator=e.name,
                                      **agreement_fields(ag, level, q, a, seed),
                                      metrics=[f for f, _ in entries], left_out=LeftOut(**left),
                                      points=points))
            kept[(g.task, g.grid, g.scope, g.group, e.name)] = (ag, rows[-1].metrics)
    return rows, kept, _panel_rows(opt, groups, panels, asm, seed)


def _panel_rows(opt, groups, panels, asm: _Assessed, seed: int) -> list[PanelRow]:
    """Per group: the evaluator panel's median rho and its permutation test
    (:func:`optiqa.stats.permutation.panel_test`) over every assessed metric trained in the
    group; an evaluator's excluded metrics are NaN for it."""
    from optiqa.stats.permutation import panel_test

    out = []
    for i, g in enumerate(groups):
        per_eval = panels.get((g.task, g.grid, g.scope, g.group), {})
        metrics = sorted({f for d in per_eval.values() for f in d})
        names = [e.name for e in opt.evaluators if e.name in per_eval]
        if len(metrics) < 1 or not names:
            continue
        q = np.array([[per_eval[n].get(f, np.nan) for f in metrics] for n in names])
        a = np.array([asm.quality[f] for f in metrics])
        res = panel_test(q, a, names, seed=_seed(seed, 3, i))
        out.append(PanelRow(**vars(g), metrics=metrics, **vars(res)))
    return out


def _contrast_rows(opt, groups, kept, level) -> list[Contrast]:
    rows = []
    for task, grid, scope, g1, g2 in contrast_pairs(groups):
        first, second = g1.group, g2.group
        confound = contrast_confound(scope, g1, g2, [c for c in opt.cells if c.task == task])
        for e in opt.evaluators:
            (ag1, m1), (ag2, m2) = (kept[(task, grid, scope, first, e.name)],
                                    kept[(task, grid, scope, second, e.name)])
            diff = {}
            for stat in ("spearman", "kendall"):
                v1, v2 = getattr(ag1, stat), getattr(ag2, stat)
                r1, r2 = getattr(ag1, stat + "_reps"), getattr(ag2, stat + "_reps")
                diff[stat] = (_num(v2 - v1), None if r1 is None or r2 is None
                              else correlation.percentile_ci(r2 - r1, level))
            reason = (f"{first}: {ag1.reason}" if ag1.reason else
                      f"{second}: {ag2.reason}" if ag2.reason else confound)
            if reason:   # no difference is reported for an undefined contrast
                diff = {stat: (None, None) for stat in diff}
            rows.append(Contrast(task, grid, e.name, scope, first, second, ag1.n_metrics,
                                 ag2.n_metrics, m1 == m2, reason, *diff["spearman"],
                                 *diff["kendall"]))
    return rows


def _sweep(opt, stats, level, agreement_rows) -> WeightSweep:
    by_key = {(c.task, c.fidelity, c.setting): c for c in opt.cells}
    curves = []
    for task in dict.fromkeys(c.task for c in opt.cells):
        cells = [c for c in opt.cells if c.task == task]
        for disc in sorted({c.discriminator for c in cells if c.adversarial}):
            for e in opt.evaluators:
                sign = -1.0 if e.lower_better else 1.0
                for f in sorted({c.fidelity for c in cells}):
                    adv = sorted((c for c in cells if c.fidelity == f and c.discriminator == disc),
                                 key=lambda c: c.adversarial_weight)
                    if not adv:
                        continue
                    base = by_key.get((task, f, "none"))
                    line = ([base] if base else []) + adv
                    got = [stats.get((c.name, e.name), (math.nan, None)) for c in line]
                    excl = [opt.exclusion(c, e) for c in line]
                    curves.append(SweepCurve(
                        task, disc, e.name, f, [c.adversarial_weight for c in line],
                        [c.name for c in line], [_num(sign * p) for p, _ in got],
                        [_ci(r, level, sign) for _, r in got], [_num(p) for p, _ in got],
                        [None if x is None else x[1] for x in excl]))
    return WeightSweep(curves, [r for r in agreement_rows if r.scope == "weight"])


# ---------------------------------------------------------------------------------------------
# agreement among evaluators; paired tests
# ---------------------------------------------------------------------------------------------
def evaluator_agreement(opt: OptimizationScores, stats: dict, task: str, n_perm: int,
                        seed: int) -> EvaluatorAgreement:
    """Kendall's W of the evaluators' rankings of the cells of one task (by mean score).

    W needs every evaluator to rank the same objects, so it is computed over the cells that
    every evaluator may judge (circularity and missing scores remove the others, listed in
    ``cells_left_out``); pairwise Spearman correlations use the cells both evaluators judge.
    """
    evs = opt.evaluators
    cells = [c for c in opt.cells if c.task == task]
    common = [c for c in cells if all((c.name, e.name) in stats for e in evs)]
    judged_by_all = {c.name for c in common}
    left = [CellLeftOut(c.name, [e.name for e in evs if opt.exclusion(c, e)])
            for c in cells if c.name not in judged_by_all]
    matrix = np.array([[stats[(c.name, e.name)][0] for c in common] for e in evs]
                      ).reshape(len(evs), len(common))
    conc = ranking.kendalls_w(matrix)
    loo = ranking.leave_one_out(matrix) if conc.reason is None else []
    pairwise = np.full((len(evs), len(evs)), None, dtype=object)
    counts = np.zeros((len(evs), len(evs)), dtype=int)
    for i, a in enumerate(evs):
        for j, b in enumerate(evs):
            both = [c for c in cells if (c.name, a.name) in stats and (c.name, b.name) in stats]
            counts[i, j] = len(both)
            if len(both) >= 2:
                pairwise[i, j] = _num(correlation.srcc([stats[(c.name, a.name)][0] for c in both],
                                                       [stats[(c.name, b.name)][0] for c in both]))
    from optiqa.stats.incomplete import incomplete_agreement

    every = np.array([[stats[(c.name, e.name)][0] if (c.name, e.name) in stats else np.nan
                       for c in cells] for e in evs]).reshape(len(evs), len(cells))
    incomplete = incomplete_agreement(every, n_perm=n_perm, seed=seed)
    return EvaluatorAgreement(
        task, len(evs), len(common), incomplete, [c.name for c in common], left,
        _num(conc.w), _num(conc.chi2), conc.df, _num(conc.p_value),
        _num(ranking.concordance_permutation_p(matrix, n_perm, seed)), n_perm, conc.reason,
        [LeaveOneOut(e.name, _num(r["w_without"]), _num(r["spearman_with_others"]))
         for e, r in zip(evs, loo)],
        Pairwise([e.name for e in evs], pairwise.tolist(), counts.tolist()))


def default_pairs(cells: list[Cell]) -> list[tuple[str, str]]:
    """Each adversarial cell against the cell of the same task and fidelity without one."""
    base = {(c.task, c.fidelity): c.name for c in cells if not c.adversarial}
    return [(c.name, base[(c.task, c.fidelity)]) for c in cells
            if c.adversarial and (c.task, c.fidelity) in base]


def paired_tests(opt: OptimizationScores, pairs,
                 family: str = "exploratory") -> list[PairedTest]:
    """Wilcoxon signed-rank test of cell A vs cell B per evaluator on the same test images.

    Differences are oriented (higher = better), so ``rank_biserial`` > 0 means A is better.
    ``p_holm``: Holm's adjustment over every test of the returned table, which is one family
    (``family``: ``planned`` for ``report.comparisons``, else ``exploratory``); every row names
    its family and :func:`test_family` describes it (size, smallest attainable p).
    """
    cells = {c.name: c for c in opt.cells}
    rows = []
    for a_name, b_name in pairs:
        for name in (a_name, b_name):
            if name not in cells:
                raise InputError(f"paired test names unknown cell {name!r}", option="pairs")
        a, b = cells[a_name], cells[b_name]
        for e in opt.evaluators:
            row = PairedTest(a.name, b.name, e.name, len(opt.images))
            excl = opt.exclusion(a, e) or opt.exclusion(b, e)
            if excl:
                row.reason = f"{excl[0]}: {excl[1]}"
                rows.append(row)
                continue
            qa, qb = opt.oriented(a, e), opt.oriented(b, e)
            test = ranking.wilcoxon_signed_rank(qa, qb)
            sign = -1.0 if e.lower_better else 1.0
            row.n_nonzero, row.t_plus, row.t_minus = (test["n_nonzero"], test["t_plus"],
                                                      test["t_minus"])
            row.p_value, row.rank_biserial = _num(test["p_value"]), _num(test["rank_biserial"])
            row.reason = test["reason"]
            row.median_difference = float(np.median(sign * (qa - qb)))
            rows.append(row)
    adjusted, fam = wilcoxon_family(family, [r.p_value for r in rows],
                                    [r.n_nonzero or 0 for r in rows])
    for row, p in zip(rows, adjusted):
        row.p_holm, row.family, row.family_size = p, family, fam.size
        row.smallest_p = wilcoxon_smallest_p(row.n_nonzero or 0)
    return rows


def test_family(rows: list[PairedTest], family: str):
    """The :class:`~optiqa.stats.multiplicity.TestFamily` of a table of paired tests."""
    return wilcoxon_family(family, [r.p_value for r in rows],
                           [r.n_nonzero or 0 for r in rows])[1]


test_family.__test__ = False      # a name pytest would collect


