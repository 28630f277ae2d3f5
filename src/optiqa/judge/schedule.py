"""Which pair of runs, which crop and which side a rater sees next.

Balanced and adaptive at once:

1. **Anchor**: the run compared least often so far (issued trials, answered or pending; ties at
   random). Every trial includes the least-compared run.
2. **Partner**: among the runs compared at most ``max(2, 5 % of the mean)`` more often than the
   anchor (so the counts per run stay within that of each other), the run ``b`` that maximises
   ``info(a, b) / (1 + n_ab)``, where ``n_ab`` is how often the pair was shown and
   ``info = max(p (1 - p), 0.05)`` with ``p`` the current Bradley–Terry probability that ``a``
   beats ``b`` (strongly regularised early on). ``p (1 - p)`` is the Fisher information of one
   vote about ``s_a - s_b``: votes go where the ranking is uncertain (close runs), with
   diminishing returns per pair, while the floor keeps every pair sampled (0.05 is p = 0.95).
   Without votes all ``info`` are equal and this is a round robin.
3. **Crop**: of the crops both runs have, the one this rater has not judged for this pair and
   that was shown least for it; **sides** at random (position bias averages out).

**Repeats** measure consistency: every ``repeat_every``-th trial of a rater (up to
``max_repeats``) shows again one of the rater's answered trials, at least ``repeat_min_gap``
trials old, with the sides swapped.

Randomness is seeded by (seed, rater, trial number), so a schedule can be replayed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

INFO_FLOOR = 0.05
BALANCE_SLACK = 0.05  # partner's count may exceed the anchor's by max(2, 5 % of the mean)
SCHEDULE_ALPHA = 1.0  # regularisation of the scheduling estimates: shrinks early noisy scores


@dataclass(frozen=True)
class ScheduleOptions:
    queue: int = 2              # trials issued ahead to a rater (the shown one + one preloaded)
    repeat_every: int = 10
    max_repeats: int = 6
    repeat_min_gap: int = 5
    seed: int = 0


@dataclass(frozen=True)
class Plan:
    """A trial to issue: crop, runs on each side, and the trial it repeats (if any)."""

    image_id: str
    crop: int
    box: tuple[int, int, int, int]
    run_left: str
    run_right: str
    repeat_of: str | None = None


def rng_for(seed: int, rater: str, seq: int) -> random.Random:
    return random.Random(f"{seed}\x1f{rater}\x1f{seq}")


def win_probability(scores: dict[str, float], a: str, b: str) -> float | None:
    import math

    if a not in scores or b not in scores:
        return None
    return 1.0 / (1.0 + math.exp(-(scores[a] - scores[b])))


def choose_pair(pairs: list[tuple[str, str]], pair_counts: dict, scores: dict[str, float],
                rng: random.Random) -> tuple[str, str]:
    """Anchor on the least-compared run, partner by information per vote (see module doc)."""
    runs = sorted({r for p in pairs for r in p})
    run_counts = {r: 0 for r in runs}
    for p in pairs:
        for r in p:
            run_counts[r] += pair_counts.get(p, 0)
    fewest = min(run_counts.values())
    anchor = rng.choice([r for r in runs if run_counts[r] == fewest])
    slack = max(2.0, BALANCE_SLACK * sum(run_counts.values()) / len(runs))

    def utility(pair):
        a, b = pair
        p = win_probability(scores, a, b)
        info = 0.25 if p is None else max(p * (1 - p), INFO_FLOOR)
        return info / (1 + pair_counts.get(pair, 0))

    candidates = [p for p in pairs if anchor in p]
    balanced = [p for p in candidates if all(run_counts[r] <= fewest + slack for r in p)]
    candidates = balanced or candidates  # empty only if the anchor's partners are all ahead
    best = max(utility(p) for p in candidates)
    return rng.choice([p for p in candidates if utility(p) >= best * (1 - 1e-9)])


def choose_crop(pair: tuple[str, str], crops: list, crop_counts: dict, seen: set,
                rng: random.Random):
    """Unseen by this rater for this pair first, then least shown overall; ties at random."""
    def cost(c):
        return ((pair, c.key) in seen, crop_counts.get((pair, c.key), 0))

    best = min(cost(c) for c in crops)
    return rng.choice([c for c in crops if cost(c) == best])


def plan_repeat(history: list, seq: int, options: ScheduleOptions,
                rng: random.Random) -> Plan | None:
    """A repeat of an answered trial for the rater's ``seq``-th trial, or None.

    ``history``: the rater's ``(Trial, answered)`` in order.
    """
    if options.repeat_every <= 0 or seq % options.repeat_every:
        return None
    repeated = {t.repeat_of for t, _ in history if t.repeat_of}
    if len(repeated) >= options.max_repeats:
        return None
    candidates = [t for t, answered in history
                  if answered and t.repeat_of is None and t.trial_id not in repeated
                  and t.seq <= seq - options.repeat_min_gap]
    if not candidates:
        return None
    t = rng.choice(candidates)
    return Plan(t.image_id, t.crop, t.box, run_left=t.run_right, run_right=t.run_left,
                repeat_of=t.trial_id)


def plan_trial(pairs: list[tuple[str, str]], crops_by_pair: dict, pair_counts: dict,
               crop_counts: dict, scores: dict[str, float], seen: set,
               rng: random.Random) -> Plan:
    """A fresh trial: pair, crop and sides (see module doc)."""
    pair = choose_pair(pairs, pair_counts, scores, rng)
    crop = choose_crop(pair, crops_by_pair[pair], crop_counts, seen, rng)
    left, right = pair if rng.random() < 0.5 else pair[::-1]
    return Plan(crop.image_id, crop.index, crop.box, left, right)
