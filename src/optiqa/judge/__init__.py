"""Human judgments: a pairwise-comparison (2AFC) web app and Bradley–Terry scores of the runs.

The study folder holds ``images/manifest.json`` (the restored images of each run, see
:mod:`optiqa.judge.manifest`); ``optiqa judge serve STUDY_DIR`` shows raters two runs' versions
of the same crop and stores each vote in ``STUDY_DIR/judgments.db`` (:mod:`optiqa.judge.store`);
``optiqa judge fit STUDY_DIR`` turns the votes into scores. User guide: ``docs/judging.md``.

API for the study report
------------------------
``fit_study(study_dir, n_boot=2000, seed=0, alpha=0.01, ci_level=0.95) -> HumanScores``

Reads the votes (read-only, safe while the server runs) and the manifest; never raises for a
study without votes. :class:`HumanScores` (frozen dataclass; ``to_dict()`` gives plain JSON):

- ``has_votes`` (bool) and ``message`` (``"no votes yet"``, or ``"N votes from R rater(s)"``);
- ``runs``: one :class:`RunScore` per manifest run (manifest order): ``run``, ``label``,
  ``score`` (Bradley–Terry, natural log odds, mean zero over voted runs; ``None`` without votes),
  ``ci_low``/``ci_high`` (bootstrap percentile interval at ``ci_level``), ``rank`` (1 = most
  preferred), ``votes``, ``wins``;
- ``scores()`` -> ``{run: score}``, ``ranking()`` -> runs best first, ``preference(a, b)`` ->
  modelled P(a preferred to b);
- ``raters``: :class:`RaterStats` per rater: ``votes``, ``repeats``, ``consistent``,
  ``consistency`` (same choice on a repeated trial, None without repeats), ``agreement`` (share
  of votes that agree with the scores fitted on the other raters), ``median_response_ms``;
- ``consistency`` over all raters, ``pairs`` (:class:`PairStats`: ``run_a``, ``run_b``,
  ``votes``, ``wins_a``), ``n_votes``, ``n_repeat_votes``, ``connected``, ``notes``.

Higher score = preferred by people, so the human ranking correlates with a metric's ranking in
the metric's "higher is better" orientation.

``fit_votes(votes, runs=None, labels=None, ...)`` does the same from a list of votes
(:class:`optiqa.judge.store.Vote`). The web app needs Flask (``pip install 'optiqa[judge]'``);
the fit needs only ``choix``.
"""
from __future__ import annotations

from optiqa.judge.fit import (HumanScores, PairStats, RaterStats, RunScore, bradley_terry,
                              fit_study, fit_votes)

__all__ = ["HumanScores", "PairStats", "RaterStats", "RunScore", "bradley_terry", "fit_study",
           "fit_votes"]
