"""The report's analysis sections, from ``analysis.json`` (:mod:`optiqa.stats.asymmetry`)."""
from __future__ import annotations

from optiqa.report.document import Document, Figure, Table


def _ci(ci) -> str:
    return "-" if not ci else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _p(row: dict, stat: str = "spearman"):
    """The permutation p of a rank-agreement row (None when undefined)."""
    t = row.get(f"{stat}_test")
    return None if not t else t["p_value"]


def _k_note(row: dict) -> str:
    """How far a rank agreement over k metrics can go: its exactness and attainable values."""
    t = row.get("spearman_test")
    k = row.get("n_metrics", 0)
    flag = "descriptive only (k < 5)" if row.get("descriptive_only") else ""
    if not t:
        return flag
    from optiqa.stats.permutation import PermutationTest

    test = PermutationTest.from_json(t)
    how = "exact, all k! orders" if test.method == "exact" else \
        f"Monte Carlo, ±{test.standard_error:.3f}"
    values = ("" if test.attainable is None or len(test.attainable) > 8 else
              "; rho can only be " + ", ".join(f"{v:g}" for v in test.attainable))
    smallest = "" if test.smallest_p is None else f"; smallest p {test.smallest_p:.2g}"
    return "; ".join(x for x in (flag, f"{how} (k = {k}){smallest}{values}") if x)


def _agreement_family(rows) -> str:
    """The family statement of a rank-agreement table: its size and the floor of its p-values."""
    tested = [r for r in rows if r.get("spearman_test")]
    floors = sorted({(r["n_metrics"], r["spearman_test"]["smallest_p"]) for r in tested
                     if r["spearman_test"].get("smallest_p") is not None})
    floor = "; ".join(f"k = {k}: {p:.2g}" for k, p in floors)
    return (f"Exploratory family: {len(tested)} permutation tests of rho, not adjusted for "
            f"multiplicity (Holm over them would multiply the smallest p by {len(tested)}); "
            f"smallest attainable p per k: {floor or '-'}.")


def title_note(row: dict) -> str:
    """``rho 0.80, p 0.33 exact, k = 4, descriptive only`` for a figure title."""
    rho = "undefined" if row.get("spearman") is None else f"{row['spearman']:.2f}"
    t = row.get("spearman_test")
    p = "" if not t or t["p_value"] is None else \
        f", p {t['p_value']:.2g} {'exact' if t['method'] == 'exact' else 'MC'}"
    flag = ", descriptive only" if row.get("descriptive_only") else ""
    return f"rho {rho}{p}, k = {row.get('n_metrics')}{flag}"


def _left_out(row: dict) -> str:
    parts = [f"{k.replace('_', ' ')}: {', '.join(v)}" for k, v in row["left_out"].items() if v]
    return "; ".join(parts) or "-"


def answer_section(doc: Document, r) -> None:
    """The first screen: one generated sentence per task and setting (``analysis.json``'s
    ``headline``), then the evaluator x setting rank agreement as one heatmap."""
    a = r.analysis
    doc.heading("The answer")
    if not a or not a.get("headline"):
        doc.para("No answer yet: the analysis has not run (it needs the assess, train and "
                 "evaluate stages).")
        return
    for h in a["headline"]:
        doc.para(h["sentence"], "answer")
    doc.para("Does a fidelity metric's rank as an IQA model predict its rank as a training loss? "
             "Each sentence: for every evaluator, Spearman's rho between the losses' IQA "
             "quality (SRCC with the human or known-order scores) and the quality of the models "
             "they trained (the evaluator's mean score); its median over the evaluators, and the "
             "permutation test of that median (the IQA ranking permuted once for all "
             "evaluators: exact over all k! orders up to k = 8). Fewer than 5 losses: "
             "descriptive only. The tables below give every number.", "protocol")
    _agreement_heatmap(doc, a)


def _agreement_heatmap(doc: Document, a) -> None:
    from optiqa.report import figures

    # keyed by grid too: one setting (e.g. no discriminator) is in several grids, over other losses
    rows = {(x["task"], x.get("grid"), x["scope"], x["group"], x["evaluator"]): x
            for x in a["rank_agreement"]}
    several_grids = len({h.get("grid") for h in a["headline"]}) > 1
    for task in dict.fromkeys(h["task"] for h in a["headline"]):
        cols = [h for h in a["headline"] if h["task"] == task]
        evaluators = [e["name"] for e in a["evaluators"]]

        def row(h, e):
            return rows.get((task, h.get("grid"), h["scope"], h["group"], e)) or {}
        rho = [[row(h, e).get("spearman") for h in cols] for e in evaluators]
        p = [[_p(row(h, e)) for h in cols] for e in evaluators]
        ks = [[row(h, e).get("n_metrics") for h in cols] for e in evaluators]
        notes = [[f"k = {k}" if k is not None and k != h["k"] and rho[i][j] is not None else ""
                  for j, (k, h) in enumerate(zip(ks[i], cols))] for i in range(len(evaluators))]
        labels = [(f"{h.get('grid')}:\n" if several_grids else "")
                  + ("with D (pooled)" if h["scope"] == "adversarial" else h["group"])
                  + f"\nk = {h['k']}"
                  + (", descriptive" if h["verdict"] == "descriptive" else "") for h in cols]
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


def analysis_sections(doc: Document, r) -> None:
    a = r.analysis
    doc.heading("Assessment vs optimization")
    if not a:
        doc.para(f"No analysis yet: {r.analysis_missing or 'nothing to analyse'}.")
        return
    p = a["protocol"]
    ds = ", ".join(f"{d['name']} ({d.get('n_contents', '?')} contents)" for d in p["datasets"])
    protocol = (f"Optimization quality: {p['optimization_quality']}. Assessment quality: "
                f"{p['assessment_quality']} (datasets: {ds}). Rank agreement: Spearman's rho "
                f"and Kendall's tau-b between the two over the fidelity metrics an evaluator may "
                f"judge (at least {p['min_metrics']}); {int(100 * p['ci_level'])}% "
                f"{p['ci_method']} intervals, {p['n_boot']} replicates: {p['resampling']}. "
                f"Circularity: {p['circularity']}.")
    if p.get("images_ci_warning"):
        protocol += f" Caution: {p['images_ci_warning']}."
    for d in p["datasets"]:
        if d.get("ci_warning"):
            protocol += f" Caution ({d['name']}): {d['ci_warning']}."
    _agreement_table(doc, a, protocol)
    _seeds(doc, a)
    _scatter(doc, a)
    _contrasts(doc, a)
    _sweep(doc, a)
    _evaluators(doc, a)
    _paired(doc, a)


def _agreement_table(doc, a, protocol) -> None:
    rows = []
    for row in a["rank_agreement"]:
        if row["scope"] not in ("setting", "adversarial"):
            continue
        group = row["group"] if row["scope"] == "setting" else f"{row['group']} D (pooled)"
        rows.append([row["evaluator"], row["task"], row["grid"], group, row["n_metrics"],
                     row["spearman"], _ci(row["spearman_ci"]), _p(row), row["kendall"],
                     _ci(row["kendall_ci"]), _p(row, "kendall"), _k_note(row),
                     row["reason"] or "", _left_out(row)])
    protocol += (" p: two-sided permutation p-value of rho and of tau (all k! orders of the "
                 "metrics up to k = 8, Monte Carlo with its standard error beyond); with k "
                 "metrics rho takes only a few values and p cannot be below 2/k!, so below 5 "
                 "metrics an agreement is descriptive only. The intervals resample images and "
                 "IQA contents for this fixed set of metrics: they say nothing about other "
                 "losses.")
    protocol += " " + _agreement_family(a["rank_agreement"])
    doc.table(Table("Rank agreement between a metric's quality as an IQA model and as a loss",
                    ["evaluator", "task", "grid", "setting", "metrics", "Spearman", "95% CI",
                     "p", "Kendall", "95% CI", "p", "k", "undefined because", "left out"], rows,
                    csv_name="rank_agreement", protocol=protocol, digits=3))


def _seeds(doc, a) -> None:
    """Seed-to-seed spread next to the between-loss spread, per evaluator (train.seeds)."""
    seeds = a.get("seeds") or {}
    if seeds.get("n_seeds", 1) <= 1:
        doc.para("Training seeds: one run per cell, so the intervals describe these particular "
                 "networks, not the losses; seed-to-seed variation is not measured (list "
                 "seeds in train.seeds to replicate every cell).", "protocol")
        return
    rows = [[x["evaluator"], x["task"], x["setting"], x.get("n_units"), x.get("n_seeds"),
             x.get("between_sd"), x.get("seed_sd"), x.get("icc"), x.get("icc_mean"),
             x.get("p_value"), x.get("reason") or ""] for x in seeds["spread"]]
    doc.table(Table("Seed-to-seed spread next to the spread between losses",
                    ["evaluator", "task", "setting", "losses", "seeds", "between-loss SD",
                     "seed-to-seed SD", "ICC(1,1)", "ICC(1,S)", "p (F)", "undefined because"],
                    rows, csv_name="seed_spread", digits=3,
                    protocol=f"Every cell trained with {seeds['n_seeds']} seeds; quality of one "
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

    panels = []
    for row in a["rank_agreement"]:
        if row["scope"] != "adversarial" or not row["points"]:
            continue
        panels.append({"title": f"{row['evaluator']}: {row['group']} discriminator "
                                f"({row['task']}, {row['grid']})",
                       "x": [pt["assessment"] for pt in row["points"]],
                       "y": [pt["optimization"] for pt in row["points"]],
                       "labels": [pt["metric"] for pt in row["points"]],
                       "note": title_note(row)})
    if panels:
        doc.figure(Figure("Assessment vs optimization", figures.scatter_panels(
            panels, "assessment SRCC (IQA)", "optimization quality (higher = better)"),
            "asymmetry_scatter", "One point per fidelity metric: x its SRCC as an IQA model, y "
            "the mean evaluator score of the models it trained (sign flipped for lower-better "
            "evaluators), without and with a discriminator (pooled over discriminators and "
            "weights)."))


def _contrasts(doc, a) -> None:
    rows = [[c["evaluator"], c["task"], c["grid"], f"{c['second']} - {c['first']}",
             c["spearman_difference"],
             _ci(c["spearman_difference_ci"]), c["kendall_difference"],
             _ci(c["kendall_difference_ci"]), "yes" if c["same_metrics"] else "no",
             c["reason"] or ""] for c in a["contrasts"]]
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


def _sweep(doc, a) -> None:
    from optiqa.report import figures

    curves = a["weight_sweep"]["curves"]
    if not curves:
        return
    # lambda itself, or the adversarial/fidelity gradient ratio (adversarial.relative)
    name = (a.get("protocol") or {}).get("weight_name", "adversarial weight")
    doc.heading(name[0].upper() + name[1:], 3)
    panels = {}
    for c in curves:
        key = (c["task"], c["discriminator"], c["evaluator"])
        p = panels.setdefault(key, {"title": f"{c['evaluator']}: {c['discriminator']} "
                                             f"({c['task']})",
                                    "series": {}, "ylabel": c["evaluator"]})
        # each loss at its own weights (a sweep for one loss, one weight for the others)
        p["series"][c["fidelity"]] = (c["weights"], [m if x is None else None
                                                     for m, x in zip(c["mean"], c["excluded"])])
    doc.figure(Figure(f"Evaluator scores over the {name}",
                      figures.weight_curves(list(panels.values()), xlabel=name), "weight_curves",
                      "Mean evaluator score (own orientation) of the models trained with each "
                      f"fidelity loss, per discriminator, against the {name} (the "
                      "leftmost point: no discriminator). Judgments excluded by the circularity "
                      "rule are not drawn."))
    rows = [[r["evaluator"], r["task"], r["grid"], r["group"], r["n_metrics"], r["spearman"],
             _ci(r["spearman_ci"]), _p(r), r["kendall"], _ci(r["kendall_ci"]), _p(r, "kendall"),
             _k_note(r), r["reason"] or ""]
            for r in a["weight_sweep"]["rank_agreement"]]
    doc.table(Table(f"Rank agreement per {name} (pooled over discriminators)",
                    ["evaluator", "task", "grid", "ratio" if "ratio" in name else "weight",
                     "metrics", "Spearman", "95% CI", "p",
                     "Kendall", "95% CI", "p", "k", "undefined because"], rows,
                    csv_name="rank_agreement_by_weight", digits=3,
                    protocol="As the rank agreement table: permutation p over the k metrics, "
                    "descriptive only below 5. Weights: "
                    + (a.get("protocol") or {}).get("adversarial_weight", "lambda") + ". "
                    + _agreement_family(
                        a["weight_sweep"]["rank_agreement"])))


def _evaluators(doc, a) -> None:
    from optiqa.report import figures

    doc.heading("Agreement among evaluators", 3)
    for ea in a["evaluator_agreement"]:
        inc = ea.get("incomplete")
        if inc:
            doc.table(Table(f"Agreement among evaluators over the cells each may judge "
                            f"({ea['task']})",
                            ["evaluators", "cells judged", "evaluator pairs", "mean pairwise "
                             "Spearman", "W-equivalent", "p (permutation)", "undefined because"],
                            [[inc["n_raters"], inc["n_objects"], inc["n_pairs"],
                              inc["mean_spearman"], inc["w_equivalent"], inc["p_permutation"],
                              inc["reason"] or ""]],
                            csv_name=f"evaluator_agreement_{ea['task']}", digits=3,
                            protocol="Each pair of evaluators is compared over the cells both "
                            "may judge (circularity rule), with at least "
                            f"{inc['min_shared']} shared cells; the mean pairwise Spearman "
                            "rho_bar and W = ((m - 1) rho_bar + 1) / m, which equals Kendall's W "
                            "for complete rankings (Kendall & Gibbons 1990, ch. 6). One-sided "
                            f"permutation p ({inc['n_permutations']} permutations of each "
                            "evaluator's scores among its own cells)."))
        doc.table(Table(f"Kendall's W ({ea['task']})",
                        ["evaluators", "cells", "W", "chi2", "df", "p (chi2)", "p (permutation)",
                         "undefined because"],
                        [[ea["n_evaluators"], ea["n_cells"], ea["w"], ea["chi2"], ea["df"],
                          ea["p_chi2"], ea["p_permutation"], ea["reason"] or ""]],
                        csv_name=f"kendalls_w_{ea['task']}", digits=3,
                        protocol=a["protocol"]["evaluator_agreement"] + (
                            f". Cells left out (not judged by every evaluator): "
                            f"{len(ea['cells_left_out'])}." if ea["cells_left_out"] else ".")
                        + f" One test per task (family size 1); the smallest attainable "
                        f"permutation p is 1/(1 + {ea['n_permutations']}) = "
                        f"{1 / (1 + ea['n_permutations']):.2g}."))
        if ea["leave_one_out"]:
            doc.table(Table("Leave one evaluator out", ["evaluator left out", "W without it",
                                                        "its Spearman with the others' "
                                                        "consensus"],
                            [[x["evaluator"], x["w_without"], x["spearman_with_others"]]
                             for x in ea["leave_one_out"]],
                            csv_name=f"leave_one_evaluator_out_{ea['task']}", digits=3))
        pw = ea["pairwise"]
        doc.figure(Figure(f"Evaluator agreement ({ea['task']})",
                          figures.heatmap(pw["spearman"], pw["evaluators"],
                                          "Spearman between evaluators' rankings of the cells"),
                          f"evaluator_agreement_{ea['task']}",
                          "Each pair over the cells both may judge (circularity rule)."))


def _paired(doc, a) -> None:
    from optiqa.stats.multiplicity import TestFamily
    from optiqa.stats.rows import PairedTest

    families = a.get("test_families", {})
    for key, title in (("planned_tests", "Planned comparisons (report.comparisons)"),
                       ("paired_tests", "Exploratory paired comparisons: every adversarial "
                                        "model against its counterpart without a "
                                        "discriminator")):
        tests = PairedTest.many(a.get(key))
        rows = [[t.a, t.b, t.evaluator, t.n_images, t.median_difference, t.rank_biserial,
                 t.p_value, t.smallest_p, t.p_holm, t.reason or ""] for t in tests]
        if not rows:
            continue
        name = "planned" if key == "planned_tests" else "exploratory"
        family = TestFamily.from_json(families[name]) if name in families else None
        protocol = a["protocol"]["paired_tests"] + ". " + (family.describe() if family else "")
        if name == "exploratory":
            protocol += (" Exploratory: these tests were not planned; read them as pointers "
                         "for the next study, not as findings.")
        doc.table(Table(title, ["model A", "model B", "evaluator", "images", "median A-B",
                                "rank-biserial", "p", "smallest attainable p",
                                f"p (Holm, {family.size if family else len(rows)} tests)",
                                "not tested because"], rows,
                        csv_name="planned_tests" if name == "planned" else "paired_tests",
                        protocol=protocol, digits=3))


def human_section(doc: Document, r) -> None:
    """The raters' ranking of the models next to the evaluators' (``optiqa judge``)."""
    a = r.analysis or {}
    h = a.get("human")
    doc.heading("Human judgments")
    if not h or not h.get("has_votes"):
        doc.para(f"{(h or {}).get('message', 'No human judgments yet')}: collect pairwise "
                 f"judgments with `optiqa judge serve {r.folder.root}` (raters compare two "
                 "models' versions of the same crop); the next `optiqa report` adds their "
                 "ranking here and as an evaluator in the comparison with assessment.")
        return
    fit = h["fit"]
    rows = [[x["run"], x["label"], x["score"], f"[{x['ci_low']:.2f}, {x['ci_high']:.2f}]"
             if x.get("ci_low") is not None else "-", x["rank"], x["votes"], x["wins"]]
            for x in fit["runs"]]
    doc.table(Table("Bradley-Terry scores of the models", ["model", "label", "score", "95% CI",
                                                           "rank", "votes", "wins"],
                    rows, csv_name="human_scores", digits=3,
                    protocol=f"{fit.get('n_votes')} two-alternative forced-choice votes "
                    f"({h['message']}); scores in log-odds (mean zero over the voted models, "
                    "higher = preferred); percentile bootstrap CIs resampling "
                    f"{fit.get('resampled', 'votes')} ({fit.get('n_raters', '?')} raters, "
                    f"{fit.get('n_images', '?')} images; a two-way cluster bootstrap: votes of "
                    "one rater or on one image are not independent"
                    + ("; with fewer than 10 raters the intervals are too narrow"
                       if (fit.get("n_raters") or 0) < 10 else "")
                    + f"); rater consistency on repeated trials: {fit.get('consistency')}."))
    rows = [[x["evaluator"], x.get("task", "-"), x["n"], x["spearman"], _p(x), x["kendall"],
             x["reason"] or ""]
            for x in h.get("by_evaluator", [])]
    family = _agreement_family([{**x, "n_metrics": x["n"]} for x in h.get("by_evaluator", [])])
    doc.table(Table("Does each evaluator rank the models as people do?",
                    ["evaluator", "task", "models", "Spearman", "p", "Kendall",
                     "undefined because"],
                    rows,
                    csv_name="human_vs_evaluators", digits=3,
                    protocol="Rank correlation between the human scores and each evaluator's "
                    f"mean score (oriented: higher = better) on the same stimuli: the "
                    f"{(h.get('crops') or {}).get('n', '?')} crops the raters saw (each model's "
                    "crop against the reference's), over the models of one task both judge "
                    "(circularity rule applied to the evaluator; tasks are never pooled, since "
                    "votes only compare models of the same task); p: exact permutation test "
                    "over the models. " + family.replace("rho", "rho (one per evaluator)")))
    rows = [[x["task"], x["grid"],
             x["group"] if x["scope"] == "setting" else f"{x['group']} D (pooled)",
             x["n"], x["spearman"], _p(x), x["kendall"], _p(x, "kendall"),
             _k_note({**x, "n_metrics": x["n"]}), x["reason"] or ""]
            for x in h.get("rank_agreement", [])]
    doc.table(Table("People as the evaluator: assessment vs optimization",
                    ["task", "grid", "setting", "metrics", "Spearman", "p", "Kendall", "p", "k",
                     "undefined because"],
                    rows, csv_name="human_rank_agreement", digits=3,
                    protocol="Optimization quality of a fidelity metric = the mean human score "
                    "of the models it trained in the setting; assessment quality = its SRCC as "
                    "an IQA model. Point estimates: the human side has one score per model. "
                    + _agreement_family([{**x, "n_metrics": x["n"]}
                                         for x in h.get("rank_agreement", [])])))


def recovery_section(doc: Document, opts, folder, done: dict | None) -> None:
    """The recovery test of the fidelity metrics (``recovery`` options ``opts``), when the
    study ran it: ``folder`` holds its files, ``done`` its completion record (None: not run)."""
    import csv

    if opts is None or done is None:
        return
    doc.heading("Why a metric fails as a loss: the recovery test")
    with open(folder / "recovery.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    dists = [k for k in rows[0] if k.startswith("dists") and not k.endswith("_start")][0] \
        if rows else "dists"
    table = [[x["metric"], x["start"], float(x["metric_result"]), float(x["psnr"]),
              float(x["ssim_y"]), float(x[dists]), x["verdict"]] for x in rows]
    doc.table(Table(f"Recovery of '{opts.image}' ({opts.size} px, {opts.steps} Adam steps)",
                    ["loss", "start", "loss value at the end", "PSNR (RGB)", "SSIM-Y", dists,
                     "verdict"], table, csv_name="recovery", digits=3,
                    protocol="Each fidelity metric, minimised over the pixels from each start "
                    "(Ding et al., IJCV 2021). Recovered: PSNR >= 35 dB. Exposed: not recovered, "
                    "yet the metric scores the result at least as well as the reference plus "
                    "noise at 35 dB. The image is a held-out test image."))
    from optiqa.report.document import Figure

    doc.figure(Figure("Recovery test", (folder / done["figure"]).read_bytes(), "recovery",
                      "Rows: fidelity losses; columns: starts and their results."))
