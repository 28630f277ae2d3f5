"""The analysis' largest cost before issue 23: the permutation test of the evaluators' agreement
over incomplete rankings (:func:`optiqa.stats.incomplete.incomplete_agreement`), old loop vs
the replicates computed together, in one process (target 1).

The input has the example's shape: the quick study's 12 evaluators ranking its 25 cells by mean
score, NaN where the circularity rule leaves the judgment out (the rule applied to the quick
config's cells, so the same pattern of missing judgments), scores drawn with a weak shared
signal so that the p-value is away from both ends (about 0.3). The old computation (one
``scipy.stats.spearmanr`` per rater pair and replicate, the code of 4fb7c44) is the tests'
reference (tests/incomplete_plain.py); both run ``--rounds`` times alternating, and the script
prints the median CPU seconds of each, the ratio, and whether the p-values are equal.

    python bench/evaluator_agreement.py --perms 2000 --rounds 3
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))   # the scalar loop, the tests' reference
from incomplete_plain import loop_p_value  # noqa: E402


def example_scores(seed: int) -> np.ndarray:
    """``(evaluators, cells)`` with the quick study's left-out judgments as NaN."""
    from optiqa.study.cells import expand_cells
    from optiqa.study.config import load_study_config
    from optiqa.study.judges import excluded_evaluators

    cfg = load_study_config(REPO / "configs" / "study" / "quick.yaml")
    cells = expand_cells(cfg)
    evaluators = list(cfg.evaluators.metrics)
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=len(cells))
    x = np.stack([signal + rng.normal(0, 5.0, len(cells)) for _ in evaluators])
    for j, c in enumerate(cells):
        for e in excluded_evaluators(cfg, c):
            x[evaluators.index(e), j] = np.nan
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--perms", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from optiqa.stats.incomplete import incomplete_agreement

    x = example_scores(args.seed)
    print(f"{x.shape[0]} evaluators x {x.shape[1]} cells, {int(np.isnan(x).sum())} judgments "
          f"left out, {args.perms} permutations")
    times = {"old": [], "new": []}
    p = {}
    for _ in range(args.rounds):
        t = time.process_time()
        p["old"] = loop_p_value(x, 3, args.perms, args.seed)
        times["old"].append(time.process_time() - t)
        t = time.process_time()
        p["new"] = incomplete_agreement(x, n_perm=args.perms, seed=args.seed).p_permutation
        times["new"].append(time.process_time() - t)
        print(f"old {times['old'][-1]:.2f} s, new {times['new'][-1]:.2f} s CPU")
    old, new = statistics.median(times["old"]), statistics.median(times["new"])
    print(f"median CPU: old {old:.2f} s, new {new:.2f} s: {old / new:.0f}x; p-values "
          f"{'identical' if p['old'] == p['new'] else 'DIFFER'} ({p['old']!r}, {p['new']!r})")


if __name__ == "__main__":
    main()
