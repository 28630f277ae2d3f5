"""The report's analysis sections, from the typed rows of :class:`~optiqa.stats.rows.Analysis`
(``analysis.json``, :mod:`optiqa.stats.asymmetry`); attribute access only, no string keys."""
from __future__ import annotations

from optiqa.report.document import Document, Figure, Table
from optiqa.stats.permutation import PermutationTest
from optiqa.stats.rows import Analysis


def _ci(ci) -> str:
    return "-" if not ci else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _p(test: PermutationTest | None):
    """The permutation p of a rank statistic (None when undefined)."""
    return None if test is None else test.p_value


def _k_note(test: PermutationTest | None, k: int, descriptive_only: bool) -> str:
    """How far a rank agreement over k metrics can go: its exactness and attainable values."""
    flag = "descriptive only (k < 5)" if descriptive_only else ""
    if test is None:
        return flag
    how = "exact, all k! orders" if test.method == "exact" else \
        f"Monte Carlo, ±{test.standard_error:.3f}"
    values = ("" if test.attainable is None or len(test.attainable) > 8 else
              "; rho can only be " + ", ".join(f"{v:g}" for v in test.attainable))
    smallest = "" if test.smallest_p is None else f"; smallest p {test.smallest_p:.2g}"
    return "; ".join(x for x in (flag, f"{how} (k = {k}){smallest}{values}") if x)


def _agreement_family(tests) -> str:
    """The family statement of a rank-agreement table (``tests``: ``(k, spearman test)`` per
    row): its size and the floor of its p-values."""
    tested = [(k, t) for k, t in tests if t is not None]
    floors = sorted({(k, t.smallest_p) for k, t in tested if t.smallest_p is not None})
    floor = "; ".join(f"k = {k}: {p:.2g}" for k, p in floors)
    return (f"Exploratory family: {len(tested)} permutation tests of rho, not adjusted for "
            f"multiplicity (Holm over them would multiply the smallest p by {len(tested)}); "
            f"smallest attainable p per k: {floor or '-'}.")


def title_note(row) -> str:
    """``rho 0.80, p 0.33 exact, k = 4, descriptive only`` for a figure title (``row``: a
    :class:`~optiqa.stats.rows.RankAgreement`)."""
    rho = "undefined" if row.spearman is None else f"{row.spearman:.2f}"
    t = row.spearman_test
    p = "" if t is None or t.p_value is None else \
        f", p {t.p_value:.2g} {'exact' if t.method == 'exact' else 'MC'}"
    flag = ", descriptive only" if row.descriptive_only else ""
    return f"rho {rho}{p}, k = {row.n_metrics}{flag}"


def _left_out(row) -> str:
    lo = row.left_out
    parts = [f"{what}: {', '.join(metrics)}" for what, metrics in (
        ("circular", lo.circular), ("missing scores", lo.missing_scores),
        ("not trained", lo.not_trained), ("not assessed", lo.not_assessed)) if metrics]
    return "; ".join(parts) or "-"


def answer_section(doc: Document, a: Analysis | None) -> None:
    """The first screen: one generated sentence per task and setting (the analysis'
    ``headline`` rows), then the evaluator x setting rank agreement as one heatmap. ``a``: the
    :class:`~optiqa.stats.rows.Analysis`, or None before the analysis has run."""
    doc.heading("The answer")
    if a is None or not a.headline:
        doc.para("No answer yet: the analysis has not run (it needs the assess, train and "
                 "evaluate stages).")
        return
    for h in a.headline:
        doc.para(h.sentence, "answer")
    doc.para("Does a fidelity metric's rank as an IQA model predict its rank as a training loss? "
             "Each sentence: for every evaluator, Spearman's rho between the losses' IQA "
             "quality (SRCC with the human or known-order scores) and the quality of the models "
             "they trained (the evaluator's mean score); its median over the evaluators, and the "
             "permutation test of that median (the IQA ranking permuted once for all "
             "evaluators: exact over all k! orders up to k = 8). Fewer than 5 losses: "
             "descriptive only. The tables below give every number.", "protocol")
    _agreement_heatmap(doc, a)


def _agreement_heatmap(doc: Document, a: Analysis) -> None:
    from optiqa.report import figures

    # keyed by grid too: one setting (e.g. no discriminator) is in several grids, over other losses
    rows = {(x.task, x.grid, x.scope, x.group, x.evaluator): x for x in a.rank_agreement}
    several_grids = len({h.grid for h in a.headline}) > 1
    evaluators = [e.name for e in a.evaluators]
    for task in dict.fromkeys(h.task for h in a.headline):
        cols = [h for h in a.headline if h.task == task]

        def row(h, e):
            return rows.get((task, h.grid, h.scope, h.group, e))
        rho = [[x.spearman if (x := row(h, e)) else None for h in cols] for e in evaluators]
        p = [[_p(x.spearman_test) if (x := row(h, e)) else None for h in cols]
             for e in evaluators]
        ks = [[x.n_metrics if (x := row(h, e)) else None for h in cols] for e in evaluators]
        notes = [[f"k = {k}" if k is not None and k != h.k and rho[i][j] is not None else ""
                  for j, (k, h) in enumerate(zip(ks[i], cols))] for i in range(len(evaluators))]
        labels = [(f"{h.grid}:\n" if several_grids else "")
                  + ("with D (pooled)" if h.scope == "adversarial" else h.group)
                  + f"\nk = {h.k}"
                  + (", descriptive" if h.verdict == "descriptive" else "") for h in cols]
        title = (f"Rank agreement, IQA vs loss ({task}): * exact permutation p <= 0.05 "
                 "(per evaluator); k < 5: descriptive only")
        doc.figure(Figure(f"Rank agreement per evaluator and setting ({task})",
                          figures.agreement_heatmap(rho, p, labels, evaluators, title,
                                                    notes=notes),
                          f"rank_agreement_heatmap_{task}",
                          "Spearman's rho between each loss's IQA quality and the quality of "
                          "the models it trained, per evaluator (rows) and adversarial setting "
                          "(columns); (k = n): the evaluator may judge only n of the losses "
                          "(circularity rule); blank: undefined (fewer than 3)."))


def analysis_sections(doc: Document, a: Analysis | None, missing: str | None = None) -> None:
    """Assessment vs optimization: every table and figure of the
    :class:`~optiqa.stats.rows.Analysis` ``a`` (None: ``missing`` says why there is none)."""
    doc.heading("Assessment vs optimization")
    if a is None:
        doc.para(f"No analysis yet: {missing or 'nothing to analyse'}.")
        return
    p = a.protocol
    ds = ", ".join(f"{d.name} ({d.n_contents} contents)" for d in p.datasets)
    protocol = (f"Optimization quality: {p.optimization_quality}. Assessment quality: "
                f"{p.assessment_quality} (datasets: {ds}). Rank agreement: Spearman's rho "
                f"and Kendall's tau-b between the two over the fidelity metrics an evaluator may "
                f"judge (at least {p.min_metrics}); {int(100 * p.ci_level)}% "
                f"{p.ci_method} intervals, {p.n_boot} replicates: {p.resampling}. "
                f"Circularity: {p.circularity}.")
    if p.images_ci_warning:
        protocol += f" Caution: {p.images_ci_warning}."
    for d in p.datasets:
        if d.ci_warning:
            protocol += f" Caution ({d.name}): {d.ci_warning}."
    _agreement_table(doc, a, protocol)
    _seeds(doc, a.seeds)
    _scatter(doc, a)
    _contrasts(doc, a)
    _sweep(doc, a.weight_sweep, a.protocol.weight_name or "adversarial weight",
           a.protocol.adversarial_weight or "lambda")
    _evaluators(doc, a)
    _paired(doc, a)


def _agreement_rows(rows) -> list[list]:
    """Table rows of rank agreements (:class:`~optiqa.stats.rows.RankAgreement`)."""
    return [[r.evaluator, r.task, r.grid,
             r.group if r.scope != "adversarial" else f"{r.group} D (pooled)", r.n_metrics,
             r.spearman, _ci(r.spearman_ci), _p(r.spearman_test), r.kendall, _ci(r.kendall_ci),
             _p(r.kendall_test), _k_note(r.spearman_test, r.n_metrics, r.descriptive_only),
             r.reason or ""] for r in rows]


def _agreement_table(doc, a, protocol) -> None:
    shown = [r for r in a.rank_agreement if r.scope in ("setting", "adversarial")]
    rows = [row + [_left_out(r)] for r, row in zip(shown, _agreement_rows(shown))]
    protocol += (" p: two-sided permutation p-value of rho and of tau (all k! orders of the "
                 "metrics up to k = 8, Monte Carlo with its standard error beyond); with k "
                 "metrics rho takes only a few values and p cannot be below 2/k!, so below 5 "
                 "metrics an agreement is descriptive only. The intervals resample images and "
                 "IQA contents for this fixed set of metrics: they say nothing about other "
                 "losses.")
    protocol += " " + _agreement_family([(r.n_metrics, r.spearman_test)
                                         for r in a.rank_agreement])
    doc.table(Table("Rank agreement between a metric's quality as an IQA model and as a loss",
                    ["evaluator", "task", "grid", "setting", "metrics", "Spearman", "95% CI",
                     "p", "Kendall", "95% CI", "p", "k", "undefined because", "left out"], rows,
                    csv_name="rank_agreement", protocol=protocol, digits=3))


def _seeds(doc, seeds) -> None:
    """Seed-to-seed spread next to the between-loss spread, per evaluator (train.seeds)."""
    if seeds.n_seeds <= 1:
        doc.para("Training seeds: one run per cell, so the intervals describe these particular "
                 "networks, not the losses; seed-to-seed variation is not measured (list "
                 "seeds in train.seeds to replicate every cell).", "protocol")
        return
    rows = [[x.evaluator, x.task, x.setting, x.n_units, x.n_seeds, x.between_sd, x.seed_sd,
             x.icc, x.icc_mean, x.p_value, x.reason or ""] for x in seeds.spread]
    doc.table(Table("Seed-to-seed spread next to the spread between losses",
                    ["evaluator", "task", "setting", "losses", "seeds", "between-loss SD",
                     "seed-to-seed SD", "ICC(1,1)", "ICC(1,S)", "p (F)", "undefined because"],
                    rows, csv_name="seed_spread", digits=3,
                    protocol=f"Every cell trained with {seeds.n_seeds} seeds; quality of one "
                    "run = the evaluator's mean score over the test images (oriented: higher = "
                    "better). Between-loss SD: SD of the losses' seed means; seed-to-seed SD: "
                    "sqrt(MSW), the pooled SD between seeds of one loss. ICC(1,1) = (MSB - MSW) "
                    "/ (MSB + (S - 1) MSW), the share of a single run's variance due to the loss; "
                    "ICC(1,S) = (MSB - MSW) / MSB, the reliability of the mean over S seeds "
                    "(Shrout & Fleiss 1979); p: F test that the losses differ beyond seed "
                    "noise. Every statistic of this report uses the mean over seeds, and its "
                    "bootstrap resamples seeds within each cell."))


def _scatter(doc, a) -> None:
    from optiqa.report import figures

    panels = [figures.ScatterPanel(
        f"{row.evaluator}: {row.group} discriminator ({row.task}, {row.grid})",
        [pt.assessment for pt in row.points], [pt.optimization for pt in row.points],
        [pt.metric for pt in row.points], title_note(row))
        for row in a.rank_agreement if row.scope == "adversarial" and row.points]
    if panels:
        doc.figure(Figure("Assessment vs optimization", figures.scatter_panels(
            panels, "assessment SRCC (IQA)", "optimization quality (higher = better)"),
            "asymmetry_scatter", "One point per fidelity metric: x its SRCC as an IQA model, y "
            "the mean evaluator score of the models it trained (sign flipped for lower-better "
            "evaluators), without and with a discriminator (pooled over discriminators and "
            "weights)."))


def _contrasts(doc, a) -> None:
    rows = [[c.evaluator, c.task, c.grid, f"{c.second} - {c.first}", c.spearman_difference,
             _ci(c.spearman_difference_ci), c.kendall_difference,
             _ci(c.kendall_difference_ci), "yes" if c.same_metrics else "no",
             c.reason or ""] for c in a.contrasts]
    if rows:
        doc.table(Table("Does the agreement change with the discriminator?",
                        ["evaluator", "task", "grid", "contrast", "Δ Spearman", "95% CI",
                         "Δ Kendall", "95% CI", "same metrics", "undefined because"], rows,
                        csv_name="contrasts", digits=3,
                        protocol="Difference of the rank agreement between pooled groups of "
                        "settings of one grid (with vs without a discriminator, image- vs "
                        "patch-level, Transformer vs convolutional backbone), with a paired "
                        "bootstrap interval (the same replicates on both sides). A contrast "
                        "whose two sides differ in more than the contrasted factor is left "
                        "undefined (confounded)."))


def _sweep(doc, sweep, name: str = "adversarial weight", weights: str = "lambda") -> None:
    """The :class:`~optiqa.stats.rows.WeightSweep`: curves over the weights and the agreement
    per weight; ``name``: what a weight is (lambda itself, or the adversarial/fidelity gradient
    ratio with ``adversarial.relative``), ``weights``: the sentence that says which ones."""
    from optiqa.report import figures

    if not sweep.curves:
        return
    doc.heading(name[0].upper() + name[1:], 3)
    panels = {}
    for c in sweep.curves:
        p = panels.setdefault((c.task, c.discriminator, c.evaluator), figures.WeightPanel(
            f"{c.evaluator}: {c.discriminator} ({c.task})", ylabel=c.evaluator))
        # each loss at its own weights (a sweep for one loss, one weight for the others)
        p.series[c.fidelity] = (c.weights, [m if x is None else None
                                            for m, x in zip(c.mean, c.excluded)])
    doc.figure(Figure(f"Evaluator scores over the {name}",
                      figures.weight_curves(list(panels.values()), xlabel=name), "weight_curves",
                      "Mean evaluator score (own orientation) of the models trained with each "
                      f"fidelity loss, per discriminator, against the {name} (the "
                      "leftmost point: no discriminator). Judgments excluded by the circularity "
                      "rule are not drawn."))
    rows = _agreement_rows(sweep.rank_agreement)
    doc.table(Table(f"Rank agreement per {name} (pooled over discriminators)",
                    ["evaluator", "task", "grid", "ratio" if "ratio" in name else "weight",
                     "metrics", "Spearman", "95% CI", "p",
                     "Kendall", "95% CI", "p", "k", "undefined because"], rows,
                    csv_name="rank_agreement_by_weight", digits=3,
                    protocol="As the rank agreement table: permutation p over the k metrics, "
                    "descriptive only below 5. Weights: " + weights + ". "
                    + _agreement_family([(r.n_metrics, r.spearman_test)
                                         for r in sweep.rank_agreement])))


def _evaluators(doc, a) -> None:
    from optiqa.report import figures

    doc.heading("Agreement among evaluators", 3)
    for ea in a.evaluator_agreement:
        inc = ea.incomplete
        doc.table(Table(f"Agreement among evaluators over the cells each may judge "
                        f"({ea.task})",
                        ["evaluators", "cells judged", "evaluator pairs", "mean pairwise "
                         "Spearman", "W-equivalent", "p (permutation)", "undefined because"],
                        [[inc.n_raters, inc.n_objects, inc.n_pairs, inc.mean_spearman,
                          inc.w_equivalent, inc.p_permutation, inc.reason or ""]],
                        csv_name=f"evaluator_agreement_{ea.task}", digits=3,
                        protocol="Each pair of evaluators is compared over the cells both "
                        "may judge (circularity rule), with at least "
                        f"{inc.min_shared} shared cells; the mean pairwise Spearman "
                        "rho_bar and W = ((m - 1) rho_bar + 1) / m, which equals Kendall's W "
                        "for complete rankings (Kendall & Gibbons 1990, ch. 6). One-sided "
                        f"permutation p ({inc.n_permutations} permutations of each "
                        "evaluator's scores among its own cells)."))
        doc.table(Table(f"Kendall's W ({ea.task})",
                        ["evaluators", "cells", "W", "chi2", "df", "p (chi2)", "p (permutation)",
                         "undefined because"],
                        [[ea.n_evaluators, ea.n_cells, ea.w, ea.chi2, ea.df, ea.p_chi2,
                          ea.p_permutation, ea.reason or ""]],
                        csv_name=f"kendalls_w_{ea.task}", digits=3,
                        protocol=a.protocol.evaluator_agreement + (
                            f". Cells left out (not judged by every evaluator): "
                            f"{len(ea.cells_left_out)}." if ea.cells_left_out else ".")
                        + f" One test per task (family size 1); the smallest attainable "
                        f"permutation p is 1/(1 + {ea.n_permutations}) = "
                        f"{1 / (1 + ea.n_permutations):.2g}."))
        if ea.leave_one_out:
            doc.table(Table("Leave one evaluator out", ["evaluator left out", "W without it",
                                                        "its Spearman with the others' "
                                                        "consensus"],
                            [[x.evaluator, x.w_without, x.spearman_with_others]
                             for x in ea.leave_one_out],
                            csv_name=f"leave_one_evaluator_out_{ea.task}", digits=3))
        pw = ea.pairwise
        doc.figure(Figure(f"Evaluator agreement ({ea.task})",
                          figures.heatmap(pw.spearman, pw.evaluators,
                                          "Spearman between evaluators' rankings of the cells"),
                          f"evaluator_agreement_{ea.task}",
                          "Each pair over the cells both may judge (circularity rule)."))


def _paired(doc, a) -> None:
    for name, tests, family, title in (
            ("planned", a.planned_tests, a.test_families.planned,
             "Planned comparisons (report.comparisons)"),
            ("exploratory", a.paired_tests, a.test_families.exploratory,
             "Exploratory paired comparisons: every adversarial model against its counterpart "
             "without a discriminator")):
        rows = [[t.a, t.b, t.evaluator, t.n_images, t.median_difference, t.rank_biserial,
                 t.p_value, t.smallest_p, t.p_holm, t.reason or ""] for t in tests]
        if not rows:
            continue
        protocol = a.protocol.paired_tests + ". " + family.describe()
        if name == "exploratory":
            protocol += (" Exploratory: these tests were not planned; read them as pointers "
                         "for the next study, not as findings.")
        doc.table(Table(title, ["model A", "model B", "evaluator", "images", "median A-B",
                                "rank-biserial", "p", "smallest attainable p",
                                f"p (Holm, {family.size} tests)", "not tested because"], rows,
                        csv_name="planned_tests" if name == "planned" else "paired_tests",
                        protocol=protocol, digits=3))
