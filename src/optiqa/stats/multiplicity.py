"""Families of tests: Holm's adjustment within a family, and what a family can reach at all.

A study states its **planned** comparisons before seeing the data (``report.comparisons``); Holm's
adjustment runs over that family alone, so a small planned family keeps its power. Every other
test (each adversarial cell against its counterpart without a discriminator, every evaluator) is
**exploratory**: adjusted over its own, much larger, family and read as a pointer, not a finding.

A family of m tests at sample size n can only report what its test can attain: the exact
two-sided Wilcoxon signed-rank test on n non-zero paired differences has the smallest p-value
2 / 2^n (all differences of one sign: 1 of the 2^n equally likely sign patterns at each tail;
Wilcoxon 1945; Hollander, Wolfe & Chicken, Nonparametric statistical methods, 3rd ed. 2014,
sec. 3.1), so Holm over m such tests cannot go below min(1, m * 2 / 2^n). With 10 images and 148
tests that floor is 0.29: no result of such a table can be significant, whatever the data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from optiqa.stats.rows.base import Row


def holm(p_values) -> list:
    """Holm's step-down adjusted p-values (Holm, A simple sequentially rejective multiple test
    procedure, Scand. J. Statist. 6, 1979): with the m defined p-values sorted ascending,
    ``p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``. ``None``/NaN entries stay ``None`` and
    do not count in m."""
    vals = [None if v is None or not math.isfinite(v) else float(v) for v in p_values]
    defined = sorted((v, i) for i, v in enumerate(vals) if v is not None)
    m, running = len(defined), 0.0
    out: list = [None] * len(vals)
    for rank, (v, i) in enumerate(defined):
        running = max(running, min(1.0, (m - rank) * v))
        out[i] = running
    return out


def wilcoxon_smallest_p(n: int) -> float | None:
    """Smallest attainable two-sided p of the exact Wilcoxon signed-rank test on n non-zero
    differences: 2 / 2^n (None for n = 0)."""
    return None if n <= 0 else min(1.0, 2.0 / 2.0 ** n)


@dataclass(frozen=True)
class TestFamily(Row):
    """One family of tests as a table states it: its size, sample size and attainable floor."""

    __test__ = False    # not a pytest test class

    name: str                      # "planned" | "exploratory" | ...
    size: int                      # tests with a defined p-value
    n: int | None                  # sample size of each test (pairs), None when it varies
    smallest_p: float | None       # the test's smallest attainable p at n
    smallest_adjusted_p: float | None  # the same after the family's adjustment
    adjustment: str = "Holm"

    def describe(self) -> str:
        """One sentence for a table's protocol line."""
        if self.size == 0:
            return f"The {self.name} family holds no defined test."
        floor = ("" if self.smallest_p is None else
                 f"; at {self.n} pairs the smallest attainable p is 2/2^{self.n} = "
                 f"{self.smallest_p:.2g}"
                 f" ({self.smallest_adjusted_p:.2g} after {self.adjustment} over the family)")
        return (f"{self.name.capitalize()} family: {self.size} tests, {self.adjustment}-"
                f"adjusted over this family alone{floor}.")


def wilcoxon_family(name: str, p_values, n_nonzero) -> tuple[list, TestFamily]:
    """Holm-adjusted p-values of one family of Wilcoxon tests and the family's description.

    ``n_nonzero``: each test's number of non-zero differences (its effective sample size); the
    floor is stated for the largest of them (the most favourable test of the family).
    """
    adjusted = holm(p_values)
    sizes = [n for n, p in zip(n_nonzero, p_values) if p is not None and n]
    size = sum(p is not None for p in adjusted)
    n = max(sizes) if sizes else None
    smallest = wilcoxon_smallest_p(n) if n else None
    return adjusted, TestFamily(name, size, n, smallest,
                                None if smallest is None else min(1.0, size * smallest))
