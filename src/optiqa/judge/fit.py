"""Bradley–Terry scores of the runs from pairwise votes, with bootstrap confidence intervals.

Model (Bradley & Terry 1952): run ``a`` is preferred to run ``b`` with probability

    P(a > b) = 1 / (1 + exp(-(s_a - s_b))),

so a score difference of 1 means odds of e : 1 (73 %). Scores are fitted by maximum likelihood
with ``choix.ilsr_pairwise_dense`` (iterative Luce spectral ranking, Maystre & Grossglauser 2015)
and centred to mean zero over the runs that have votes. ``alpha`` adds that rate to every
transition of the Luce chain, a weak regulariser that keeps the scores finite when a run never
lost (or never won); with tens of votes per pair its effect is far below the confidence interval.

Confidence intervals: percentile bootstrap, the whole fit repeated per replicate; by default a
two-way cluster bootstrap over raters and images (:func:`cluster_intervals`: votes of one rater,
or on one image, are not independent), or over votes taken as independent
(:func:`bootstrap_intervals`). With few raters the intervals are optimistic; rater consistency
and agreement are reported next to them to judge that.

Repeated trials (the same crop and pair shown again to the same rater, sides swapped) measure
each rater's consistency and are left out of the scores, so no comparison counts twice.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np

DEFAULT_ALPHA = 0.01
RESAMPLING = ("raters and images", "votes")


def bradley_terry(runs: list[str], wins: dict[tuple[str, str], int],
                  alpha: float = DEFAULT_ALPHA) -> dict[str, float]:
    """Scores of ``runs`` from ``{(winner, loser): count}``, centred to mean zero.

    Runs without a single vote are not fitted (and not returned).
    """
    voted = sorted({r for pair, n in wins.items() if n for r in pair} & set(runs),
                   key=runs.index)
    if not voted:
        return {}
    index = {r: i for i, r in enumerate(voted)}
    comparisons = np.zeros((len(voted), len(voted)))
    for (winner, loser), n in wins.items():
        if winner in index and loser in index:
            comparisons[index[winner], index[loser]] += n
    params = _ilsr(comparisons, alpha)
    return {r: float(p) for r, p in zip(voted, params)}


def _ilsr(comparisons: np.ndarray, alpha: float, start: np.ndarray | None = None) -> np.ndarray:
    import choix

    if len(comparisons) == 1:
        return np.zeros(1)
    params = choix.ilsr_pairwise_dense(comparisons, alpha=alpha, initial_params=start,
                                       max_iter=10_000, tol=1e-9)
    return params - params.mean()


def connected(runs: list[str], pairs) -> bool:
    """Whether the comparison graph over ``runs`` (edges: pairs with votes) is connected."""
    if len(runs) <= 1:
        return True
    neighbours = defaultdict(set)
    for a, b in pairs:
        neighbours[a].add(b)
        neighbours[b].add(a)
    seen, todo = {runs[0]}, [runs[0]]
    while todo:
        for n in neighbours[todo.pop()] - seen:
            seen.add(n)
            todo.append(n)
    return seen >= set(runs)


@dataclass(frozen=True)
class RunScore:
    run: str
    label: str
    score: float | None      # Bradley–Terry score (natural log odds), None without votes
    ci_low: float | None     # bootstrap percentile interval
    ci_high: float | None
    rank: int | None         # 1 = preferred most
    votes: int               # comparisons the run took part in (repeats excluded)
    wins: int


@dataclass(frozen=True)
class RaterStats:
    rater: str
    votes: int                     # all votes, repeats included
    repeats: int                   # answered repeated trials whose original is answered too
    consistent: int                # ... on which the rater chose the same run again
    consistency: float | None      # consistent / repeats
    agreement: float | None        # share of votes agreeing with the other raters' scores
    median_response_ms: float | None


@dataclass(frozen=True)
class PairStats:
    run_a: str
    run_b: str
    votes: int
    wins_a: int


@dataclass(frozen=True)
class HumanScores:
    """Result of :func:`fit_votes` / :func:`optiqa.judge.fit_study`. ``to_dict()`` is JSON-ready."""

    runs: tuple[RunScore, ...]
    raters: tuple[RaterStats, ...]
    pairs: tuple[PairStats, ...]
    n_votes: int                   # votes in the scores (repeats excluded)
    n_repeat_votes: int
    consistency: float | None      # over all raters' repeats
    connected: bool                # False: some runs were never linked by votes to the others
    n_boot: int
    seed: int
    alpha: float
    ci_level: float = 0.95
    model: str = "bradley-terry"
    scale: str = "natural log odds: P(a preferred to b) = 1 / (1 + exp(-(s_a - s_b)))"
    message: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    resampled: str = "raters and images"   # what the bootstrap intervals resample
    n_raters: int = 0
    n_images: int = 0

    @property
    def has_votes(self) -> bool:
        return self.n_votes > 0

    def scores(self) -> dict[str, float]:
        """``{run: score}`` for the runs that have one (the human ranking as a score table)."""
        return {r.run: r.score for r in self.runs if r.score is not None}

    def ranking(self) -> list[str]:
        """Runs with a score, preferred first."""
        return [r.run for r in sorted((r for r in self.runs if r.score is not None),
                                      key=lambda r: r.rank)]

    def preference(self, a: str, b: str) -> float:
        """Modelled probability that a rater prefers run ``a`` to run ``b``."""
        s = self.scores()
        return 1.0 / (1.0 + math.exp(-(s[a] - s[b])))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["has_votes"] = self.has_votes
        return out


def _wins(votes) -> dict[tuple[str, str], int]:
    wins: dict = defaultdict(int)
    for v in votes:
        wins[(v.winner, v.loser)] += 1
    return dict(wins)


def bootstrap_intervals(runs: list[str], wins: dict, n_boot: int, seed: int, alpha: float,
                        level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the scores, resampling the votes with replacement (votes taken as
    independent; see :func:`cluster_intervals` for votes clustered by rater and image)."""
    estimate = bradley_terry(runs, wins, alpha)
    voted = list(estimate)
    if n_boot <= 0 or len(voted) < 2:
        return {}
    index = {r: i for i, r in enumerate(voted)}
    cells = [(index[w], index[l], n) for (w, l), n in wins.items() if w in index and l in index]
    rows, cols = (np.array([c[k] for c in cells]) for k in (0, 1))
    counts = np.array([c[2] for c in cells], dtype=float)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(int(counts.sum()), counts / counts.sum(), size=n_boot)
    return _percentiles(voted, estimate, rows, cols, weights, alpha, level)


def _percentiles(voted, estimate, rows, cols, weights, alpha, level):
    """Refit Bradley-Terry once per row of ``weights`` (the weight of each (winner, loser)
    entry) and take the percentile interval of every score."""
    start = np.array([estimate[r] for r in voted])  # warm start: 3-4x fewer iterations
    draws = np.empty((len(weights), len(voted)))
    for b, w in enumerate(weights):
        comparisons = np.zeros((len(voted), len(voted)))
        np.add.at(comparisons, (rows, cols), w)
        draws[b] = _ilsr(comparisons, alpha, start)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail], axis=0)
    return {r: (float(low[i]), float(high[i])) for i, r in enumerate(voted)}


def cluster_intervals(runs: list[str], votes, n_boot: int, seed: int, alpha: float,
                      level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile intervals from a two-way cluster bootstrap over raters and images.

    Votes of one rater share that rater's taste, and votes on one image share its content, so
    neither are independent. Each replicate draws the raters with replacement and, independently,
    the images with replacement; a vote counts ``(times its rater was drawn) x (times its image
    was drawn)`` (the pigeonhole bootstrap, Owen, The pigeonhole bootstrap, Ann. Appl. Statist.
    1, 2007; Field & Welsh, Bootstrapping clustered data, JRSS B 69, 2007). With few raters the
    bootstrap has few clusters to draw from and its intervals are too narrow: the report says
    how many raters there are.
    """
    votes = [v for v in votes if v.repeat_of is None]
    estimate = bradley_terry(runs, _wins(votes), alpha)
    voted = list(estimate)
    if n_boot <= 0 or len(voted) < 2:
        return {}
    index = {r: i for i, r in enumerate(voted)}
    votes = [v for v in votes if v.winner in index and v.loser in index]
    raters = sorted({v.rater for v in votes})
    images = sorted({v.image_id for v in votes})
    r_of = np.array([raters.index(v.rater) for v in votes])
    i_of = np.array([images.index(v.image_id) for v in votes])
    rows = np.array([index[v.winner] for v in votes])
    cols = np.array([index[v.loser] for v in votes])
    rng = np.random.default_rng(seed)
    w_r = rng.multinomial(len(raters), np.full(len(raters), 1 / len(raters)), size=n_boot)
    w_i = rng.multinomial(len(images), np.full(len(images), 1 / len(images)), size=n_boot)
    weights = (w_r[:, r_of] * w_i[:, i_of]).astype(float)
    return _percentiles(voted, estimate, rows, cols, weights, alpha, level)


def rater_stats(votes, alpha: float = DEFAULT_ALPHA) -> list[RaterStats]:
    """Consistency on repeated trials and agreement with the other raters, per rater."""
    by_id = {v.vote_id: v for v in votes}
    runs = sorted({r for v in votes for r in (v.winner, v.loser)})
    out = []
    for rater in sorted({v.rater for v in votes}):
        own = [v for v in votes if v.rater == rater]
        repeats = [(v, by_id[v.repeat_of]) for v in own
                   if v.repeat_of is not None and v.repeat_of in by_id]
        consistent = sum(v.winner == o.winner for v, o in repeats)
        others = bradley_terry(runs, _wins(v for v in votes
                                           if v.rater != rater and v.repeat_of is None), alpha)
        judged = [v for v in own if v.repeat_of is None and v.winner in others
                  and v.loser in others and others[v.winner] != others[v.loser]]
        agree = sum(others[v.winner] > others[v.loser] for v in judged)
        out.append(RaterStats(
            rater=rater, votes=len(own), repeats=len(repeats), consistent=consistent,
            consistency=consistent / len(repeats) if repeats else None,
            agreement=agree / len(judged) if judged else None,
            median_response_ms=float(np.median([v.response_ms for v in own]))))
    return out


def fit_votes(votes, runs: list[str] | None = None, labels: dict[str, str] | None = None,
              n_boot: int = 2000, seed: int = 0, alpha: float = DEFAULT_ALPHA,
              ci_level: float = 0.95, resample: str = "raters and images") -> HumanScores:
    """Bradley–Terry scores, bootstrap intervals, rater statistics and pair counts from votes.

    ``runs``: the runs to report (in this order), e.g. all runs of the manifest; runs that only
    appear in the votes are appended. Runs without votes get ``score=None``. ``resample``:
    ``"raters and images"`` (:func:`cluster_intervals`, the default) or ``"votes"``
    (:func:`bootstrap_intervals`, votes taken as independent).
    """
    if resample not in RESAMPLING:
        raise ValueError(f"resample must be one of {RESAMPLING}, got {resample!r}")
    votes = list(votes)
    labels = dict(labels or {})
    runs = list(dict.fromkeys(list(runs or []) + sorted({r for v in votes
                                                         for r in (v.winner, v.loser)})))
    scored = [v for v in votes if v.repeat_of is None]
    wins = _wins(scored)
    scores = bradley_terry(runs, wins, alpha)
    intervals = (bootstrap_intervals(runs, wins, n_boot, seed, alpha, ci_level)
                 if resample == "votes" else
                 cluster_intervals(runs, scored, n_boot, seed, alpha, ci_level))
    order = sorted(scores, key=lambda r: -scores[r])
    rank = {r: i + 1 for i, r in enumerate(order)}
    n_votes = defaultdict(int)
    n_wins = defaultdict(int)
    pair_votes: dict = defaultdict(lambda: [0, 0])
    for v in scored:
        n_votes[v.winner] += 1
        n_votes[v.loser] += 1
        n_wins[v.winner] += 1
        a, b = sorted((v.winner, v.loser), key=runs.index)
        pair_votes[(a, b)][0] += 1
        pair_votes[(a, b)][1] += v.winner == a
    run_scores = tuple(RunScore(
        run=r, label=labels.get(r, r), score=scores.get(r),
        ci_low=intervals.get(r, (None, None))[0], ci_high=intervals.get(r, (None, None))[1],
        rank=rank.get(r), votes=n_votes[r], wins=n_wins[r]) for r in runs)
    raters = tuple(rater_stats(votes, alpha))
    repeats = sum(r.repeats for r in raters)
    is_connected = connected(list(scores), list(pair_votes))
    notes = []
    if not is_connected:
        notes.append("the comparison graph is not connected: scores of runs in different "
                     "components are not comparable")
    for r in scores:
        if n_votes[r] and n_wins[r] in (0, n_votes[r]):
            notes.append(f"run {r!r} {'never won' if n_wins[r] == 0 else 'never lost'}: its "
                         f"score is bounded only by the regulariser (alpha={alpha:g})")
    missing = [r for r in runs if r not in scores]
    if missing and scored:
        notes.append(f"{len(missing)} run(s) have no votes: {', '.join(missing)}")
    message = (f"{len(scored)} votes from {len(raters)} rater(s)" if scored else "no votes yet")
    return HumanScores(
        runs=run_scores, raters=raters,
        pairs=tuple(PairStats(a, b, n, w) for (a, b), (n, w) in sorted(
            pair_votes.items(), key=lambda kv: (runs.index(kv[0][0]), runs.index(kv[0][1])))),
        n_votes=len(scored), n_repeat_votes=len(votes) - len(scored),
        consistency=(sum(r.consistent for r in raters) / repeats) if repeats else None,
        connected=is_connected, n_boot=n_boot, seed=seed, alpha=alpha, ci_level=ci_level,
        message=message, notes=tuple(notes), resampled=resample,
        n_raters=len({v.rater for v in scored}), n_images=len({v.image_id for v in scored}))


def fit_study(study_dir, n_boot: int = 2000, seed: int = 0, alpha: float = DEFAULT_ALPHA,
              ci_level: float = 0.95) -> HumanScores:
    """The human scores of a study: votes from ``STUDY_DIR/judgments.db``, runs and labels from
    ``STUDY_DIR/images/manifest.json``. No store or no votes: ``has_votes`` is False, every
    manifest run's score is None and ``message`` says "no votes yet". A manifest that cannot be
    read is noted, and the runs are then those named in the votes.
    """
    from dataclasses import replace
    from pathlib import Path

    from optiqa.core.errors import InputError
    from optiqa.judge.manifest import load_manifest
    from optiqa.judge.store import DB_NAME, read_votes

    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise InputError(f"study folder {study_dir} does not exist", option="study_dir")
    runs, labels, notes = [], {}, ()
    try:
        images = load_manifest(study_dir, check_files=False)
        runs, labels = list(images.runs), images.labels()
    except InputError as e:
        notes = (f"runs and labels from the votes only: {e}",)
    result = fit_votes(read_votes(study_dir / DB_NAME), runs=runs, labels=labels, n_boot=n_boot,
                       seed=seed, alpha=alpha, ci_level=ci_level)
    return replace(result, notes=notes + result.notes) if notes else result
