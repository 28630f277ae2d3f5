"""Bradley–Terry scores, bootstrap intervals and rater statistics on votes with known answers."""
from __future__ import annotations

import json
import math
import sqlite3

import numpy as np
import pytest

from optiqa.judge import fit_study, fit_votes
from optiqa.judge.fit import bradley_terry, connected
from optiqa.judge.store import DB_NAME, JudgmentStore, Trial, Vote, read_votes

TRUE = {"a": -1.0, "b": -0.3, "c": 0.0, "d": 0.5, "e": 1.2}


def vote(i, winner, loser, rater="r", repeat_of=None, left_wins=True):
    left, right = (winner, loser) if left_wins else (loser, winner)
    return Vote(f"v{i}", rater, "img", 0, (0, 0, 8, 8), left, right,
                "left" if left_wins else "right", winner, loser, 500.0 + i, float(i), repeat_of)


def simulate(true, per_pair, rng, raters=3):
    """``per_pair`` votes on every pair, winners drawn from the Bradley–Terry model."""
    names, votes = list(true), []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            p = 1 / (1 + math.exp(-(true[a] - true[b])))
            for _ in range(per_pair):
                w, l = (a, b) if rng.random() < p else (b, a)
                votes.append(vote(len(votes), w, l, rater=f"r{len(votes) % raters}",
                                  left_wins=rng.random() < 0.5))
    return votes


def test_two_runs_ml_estimate_is_the_log_odds():
    """With two runs the ML estimate is known: s_a - s_b = log(k / (n - k))."""
    votes = [vote(i, "a", "b") for i in range(7)] + [vote(7 + i, "b", "a") for i in range(3)]
    s = bradley_terry(["a", "b"], {("a", "b"): 7, ("b", "a"): 3}, alpha=0.0)
    assert s["a"] - s["b"] == pytest.approx(math.log(7 / 3), abs=1e-6)
    assert s["a"] + s["b"] == pytest.approx(0.0, abs=1e-9)
    result = fit_votes(votes, n_boot=0, alpha=0.0)
    assert result.preference("a", "b") == pytest.approx(0.7, abs=1e-6)
    assert result.ranking() == ["a", "b"]


def test_three_runs_match_the_likelihood_equations():
    """At the ML estimate each run's expected wins equal its observed wins (score equations)."""
    wins = {("a", "b"): 6, ("b", "a"): 4, ("b", "c"): 7, ("c", "b"): 3, ("a", "c"): 8,
            ("c", "a"): 2}
    s = bradley_terry(["a", "b", "c"], wins, alpha=0.0)
    for r in "abc":
        observed = sum(n for (w, _), n in wins.items() if w == r)
        expected = sum(n / (1 + math.exp(-(s[r] - s[o])))
                       for (w, l), n in wins.items() for o in (w, l)
                       if r in (w, l) and o != r)
        assert expected == pytest.approx(observed, abs=1e-5)


def test_simulated_votes_recover_order_and_scale():
    """100 votes per pair of 5 runs: order exact, each score within 0.25 of the truth (about
    three standard errors: each run has 400 comparisons, SE ~ 1/sqrt(400 * 0.2) = 0.11),
    spread within 15 %, and every true score inside its 95 % interval or within 0.05 of it."""
    votes = simulate(TRUE, 100, np.random.default_rng(1))
    result = fit_votes(votes, runs=list(TRUE), n_boot=300, seed=0)
    fitted = result.scores()
    assert result.ranking() == sorted(TRUE, key=TRUE.get, reverse=True)
    truth = np.array(list(TRUE.values())) - np.mean(list(TRUE.values()))
    est = np.array([fitted[r] for r in TRUE])
    assert np.abs(est - truth).max() < 0.25
    assert np.std(est) / np.std(truth) == pytest.approx(1.0, abs=0.15)
    for r, t in zip(result.runs, truth):
        assert r.ci_low < r.score < r.ci_high
        assert r.ci_low - 0.05 <= t <= r.ci_high + 0.05
    assert result.n_votes == 1000 and result.connected and not result.notes
    assert {(p.run_a, p.run_b): p.votes for p in result.pairs} == {
        (a, b): 100 for i, a in enumerate(TRUE) for b in list(TRUE)[i + 1:]}


def test_bootstrap_intervals_cover_the_truth_about_95_percent():
    """Over 30 simulated studies (120 intervals) the 95 % intervals cover the true score
    at least 86 % of the time (4.6 binomial standard deviations below 95 % for 120 draws), and
    their mean width is within 20 % of the asymptotic one, 2 * 1.96 * SE with the covariance
    the pseudo-inverse of the Fisher information (a Laplacian with weights n p (1 - p))."""
    true = {"a": -0.6, "b": 0.0, "c": 0.2, "d": 0.7}
    names = list(true)
    centred = {k: v - np.mean(list(true.values())) for k, v in true.items()}
    per_pair = 30
    fisher = np.zeros((4, 4))
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if i != j:
                p = 1 / (1 + math.exp(-(true[a] - true[b])))
                fisher[i, j] -= per_pair * p * (1 - p)
                fisher[i, i] += per_pair * p * (1 - p)
    asymptotic = 2 * 1.96 * np.sqrt(np.diag(np.linalg.pinv(fisher)))
    covered = total = 0
    widths = []
    for sim in range(30):
        votes = simulate(true, per_pair, np.random.default_rng(100 + sim))
        result = fit_votes(votes, runs=names, n_boot=150, seed=sim, alpha=0.0,
                           resample="votes")     # the simulated votes are independent
        for r in result.runs:
            covered += r.ci_low <= centred[r.run] <= r.ci_high
            total += 1
        widths.append([r.ci_high - r.ci_low for r in result.runs])
    assert 0.86 <= covered / total, covered / total
    ratio = np.mean(widths, axis=0) / asymptotic
    assert np.all((0.8 < ratio) & (ratio < 1.2)), ratio


def test_no_votes_is_a_clear_result(tmp_path):
    result = fit_votes([], runs=["x", "y"], labels={"x": "X"})
    assert not result.has_votes and result.message == "no votes yet"
    assert [(r.run, r.label, r.score, r.votes) for r in result.runs] == [
        ("x", "X", None, 0), ("y", "y", None, 0)]
    assert result.scores() == {} and result.ranking() == []
    json.dumps(result.to_dict())  # JSON-ready


def test_consistency_and_agreement():
    votes = [vote(i, "a", "b", rater="ann") for i in range(4)]
    # ann repeats 4 trials: same winner on 3 of them
    votes += [vote(10, "a", "b", "ann", repeat_of="v0"), vote(11, "a", "b", "ann", "v1"),
              vote(12, "a", "b", "ann", "v2"), vote(13, "b", "a", "ann", "v3")]
    # bob agrees with ann's majority on 3 of 4 votes
    votes += [vote(20, "a", "b", "bob"), vote(21, "a", "b", "bob"), vote(22, "a", "b", "bob"),
              vote(23, "b", "a", "bob")]
    result = fit_votes(votes, n_boot=0)
    raters = {r.rater: r for r in result.raters}
    assert (raters["ann"].repeats, raters["ann"].consistent) == (4, 3)
    assert raters["ann"].consistency == 0.75 and raters["bob"].consistency is None
    # agreement with the other raters' scores: both fits say a > b
    assert raters["bob"].agreement == 0.75 and raters["ann"].agreement == 1.0
    assert result.consistency == 0.75
    assert result.n_votes == 8 and result.n_repeat_votes == 4  # repeats are not scored


def test_disconnected_and_undefeated_runs_are_noted():
    votes = [vote(0, "a", "b"), vote(1, "a", "b"), vote(2, "c", "d"), vote(3, "d", "c")]
    result = fit_votes(votes, runs=["a", "b", "c", "d", "e"], n_boot=0)
    assert not result.connected
    assert any("not connected" in n for n in result.notes)
    assert any("'a' never lost" in n for n in result.notes)
    assert any("no votes: e" in n for n in result.notes)
    assert not connected(["a", "b", "c"], [("a", "b")]) and connected(["a", "b"], [("b", "a")])


def test_fit_study_reads_the_store_and_manifest(tmp_path):
    from judge_helpers import make_study

    bare = fit_study(tmp_path)                     # neither manifest nor store: no votes yet
    assert not bare.has_votes and bare.runs == () and "manifest" in bare.notes[0]
    study = make_study(tmp_path)
    empty = fit_study(study)
    assert not empty.has_votes and [r.run for r in empty.runs] == [
        "l1__none", "dists__patch", "lpips__unet", "bicubic"]
    assert empty.runs[1].label == "DISTS + patch D, w=0.005"
    store = JudgmentStore(study / DB_NAME)
    for i, (left, right, choice) in enumerate([("l1__none", "bicubic", "left")] * 3
                                              + [("bicubic", "l1__none", "left")]):
        t = Trial(f"trial{i:04d}", "ann", i + 1, "Set5/baby", 0, (0, 0, 8, 8), left, right,
                  None, 0.0)
        store.issue(t)
        assert store.record_vote(t, choice, 700.0)
        assert not store.record_vote(t, "right", 700.0)  # a second answer changes nothing
    store.close()
    result = fit_study(study, n_boot=50)
    assert result.has_votes and result.n_votes == 4
    assert result.ranking() == ["l1__none", "bicubic"]
    assert result.scores()["l1__none"] - result.scores()["bicubic"] == pytest.approx(
        math.log(3), abs=0.02)
    assert len(read_votes(study / DB_NAME)) == 4
    with sqlite3.connect(study / DB_NAME) as con:  # the table alone is the data set
        row = con.execute("SELECT rater, run_left, run_right, image_id, crop, choice, winner, "
                          "response_ms, voted_at FROM votes WHERE vote_id='trial0003'").fetchone()
    assert row[:8] == ("ann", "bicubic", "l1__none", "Set5/baby", 0, "left", "bicubic", 700.0)
    assert row[8] > 0


def test_cluster_bootstrap_over_raters_widens_intervals_when_raters_disagree():
    """Two camps of raters with opposite tastes: the votes look like a coin toss between a and
    b, but which camp is drawn decides the scores, so resampling raters gives wide intervals
    where resampling votes gives narrow ones."""
    rng = np.random.default_rng(0)
    votes = []
    for r in range(6):
        fan_of_a = r % 2 == 0
        for _ in range(40):
            p_a = 0.9 if fan_of_a else 0.1
            w, l = ("a", "b") if rng.random() < p_a else ("b", "a")
            votes.append(vote(len(votes), w, l, rater=f"r{r}"))
    # unequal camps make the rater draw matter
    votes += [vote(len(votes) + i, "a", "b", rater="r6") for i in range(40)]
    by_votes = fit_votes(votes, n_boot=400, seed=1, resample="votes")
    by_raters = fit_votes(votes, n_boot=400, seed=1)
    assert by_raters.resampled == "raters and images" and by_raters.n_raters == 7

    def width(res):
        r = next(x for x in res.runs if x.run == "a")
        return r.ci_high - r.ci_low
    assert width(by_raters) > 2.5 * width(by_votes)


def test_cluster_bootstrap_with_many_alike_raters_matches_the_vote_bootstrap():
    votes = simulate({"a": -0.5, "b": 0.0, "c": 0.6}, 200, np.random.default_rng(3), raters=40)
    clustered = fit_votes(votes, n_boot=300, seed=0)
    independent = fit_votes(votes, n_boot=300, seed=0, resample="votes")
    for c, i in zip(clustered.runs, independent.runs):
        assert (c.ci_high - c.ci_low) == pytest.approx(i.ci_high - i.ci_low, rel=0.25)
    with pytest.raises(ValueError, match="resample must be one of"):
        fit_votes(votes, resample="contents")
