"""The report's human-judgment section, from the :class:`~optiqa.stats.rows.Human` rows of the
analysis (``optiqa judge``): the raters' Bradley-Terry scores, each evaluator against them, and
people as the evaluator of the assessment vs optimization question."""
from __future__ import annotations

from optiqa.report.analysis import _agreement_family, _k_note, _p
from optiqa.report.document import Document, Table


def human_section(doc: Document, h, study_root) -> None:
    """The raters' ranking of the models next to the evaluators' (``h``: the analysis'
    :class:`~optiqa.stats.rows.Human`, None before any analysis; ``study_root``: the folder
    named in the how-to when there are no votes yet)."""
    doc.heading("Human judgments")
    if h is None or not h.has_votes:
        doc.para(f"{h.message if h is not None else 'No human judgments yet'}: collect pairwise "
                 f"judgments with `optiqa judge serve {study_root}` (raters compare two "
                 "models' versions of the same crop); the next `optiqa report` adds their "
                 "ranking here and as an evaluator in the comparison with assessment.")
        return
    fit = h.fit
    rows = [[x.run, x.label, x.score, f"[{x.ci_low:.2f}, {x.ci_high:.2f}]"
             if x.ci_low is not None else "-", x.rank, x.votes, x.wins] for x in fit.runs]
    doc.table(Table("Bradley-Terry scores of the models", ["model", "label", "score", "95% CI",
                                                           "rank", "votes", "wins"],
                    rows, csv_name="human_scores", digits=3,
                    protocol=f"{fit.n_votes} two-alternative forced-choice votes "
                    f"({h.message}); scores in log-odds (mean zero over the voted models, "
                    "higher = preferred); percentile bootstrap CIs resampling "
                    f"{fit.resampled} ({fit.n_raters} raters, "
                    f"{fit.n_images} images; a two-way cluster bootstrap: votes of "
                    "one rater or on one image are not independent"
                    + ("; with fewer than 10 raters the intervals are too narrow"
                       if fit.n_raters < 10 else "")
                    + f"); rater consistency on repeated trials: {fit.consistency}."))
    by_evaluator = h.by_evaluator or []
    rows = [[x.evaluator, x.task, x.n, x.spearman, _p(x.spearman_test), x.kendall,
             x.reason or ""] for x in by_evaluator]
    family = _agreement_family([(x.n, x.spearman_test) for x in by_evaluator])
    doc.table(Table("Does each evaluator rank the models as people do?",
                    ["evaluator", "task", "models", "Spearman", "p", "Kendall",
                     "undefined because"],
                    rows,
                    csv_name="human_vs_evaluators", digits=3,
                    protocol="Rank correlation between the human scores and each evaluator's "
                    f"mean score (oriented: higher = better) on the same stimuli: the "
                    f"{h.crops.n if h.crops is not None else '?'} crops the raters saw (each "
                    "model's crop against the reference's), over the models of one task both "
                    "judge (circularity rule applied to the evaluator; tasks are never pooled, "
                    "since votes only compare models of the same task); p: exact permutation "
                    "test over the models. " + family.replace("rho", "rho (one per evaluator)")))
    agreement = h.rank_agreement or []
    rows = [[x.task, x.grid, x.group if x.scope == "setting" else f"{x.group} D (pooled)",
             x.n, x.spearman, _p(x.spearman_test), x.kendall, _p(x.kendall_test),
             _k_note(x.spearman_test, x.n, x.descriptive_only), x.reason or ""]
            for x in agreement]
    doc.table(Table("People as the evaluator: assessment vs optimization",
                    ["task", "grid", "setting", "metrics", "Spearman", "p", "Kendall", "p", "k",
                     "undefined because"],
                    rows, csv_name="human_rank_agreement", digits=3,
                    protocol="Optimization quality of a fidelity metric = the mean human score "
                    "of the models it trained in the setting; assessment quality = its SRCC as "
                    "an IQA model. Point estimates: the human side has one score per model. "
                    + _agreement_family([(x.n, x.spearman_test) for x in agreement])))
