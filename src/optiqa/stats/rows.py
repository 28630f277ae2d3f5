"""Typed result rows of the analysis: what ``analysis.json`` holds and the report reads.

Each row is a dataclass with ``to_json`` (a plain dict, the form written to ``analysis.json``)
and ``from_json`` (strict: a missing or unknown key is an :class:`InputError` naming the row
type and the key, so a typo fails where the row is read, not as a silently empty cell of a
table). The statistics build these rows; the report reads them back with ``from_json`` and
attribute access instead of string keys.

Rows so far: :class:`ModelMean` (the evaluator table), :class:`PairedTest` (planned and
exploratory comparisons), :class:`Exclusion` (a judgment left out, and why).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from optiqa.core.errors import InputError


class Row:
    """``to_json``/``from_json`` for a dataclass of JSON-able fields."""

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, d: dict):
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(f"{cls.__name__}: unknown key {unknown[0]!r} (keys: "
                             f"{', '.join(sorted(names))})")
        try:
            return cls(**d)
        except TypeError as e:   # a required field is missing
            raise InputError(f"{cls.__name__}: {e}") from None

    @classmethod
    def many(cls, rows) -> list:
        return [cls.from_json(r) for r in rows or []]


@dataclass
class ModelMean(Row):
    """A model's mean score by one evaluator (own orientation) with its percentile bootstrap
    interval over the test images."""

    model: str
    evaluator: str
    mean: float | None
    mean_ci: list[float] | None


@dataclass
class Exclusion(Row):
    """A (cell, evaluator) judgment left out of every statistic: ``kind`` ``circular`` (the
    circularity rule) or ``missing`` (no scores)."""

    cell: str
    fidelity: str
    evaluator: str
    kind: str
    reason: str


@dataclass
class PairedTest(Row):
    """Wilcoxon signed-rank test of model A against model B by one evaluator on the same test
    images (differences oriented higher = better; ``rank_biserial`` > 0: A better), with Holm's
    adjustment over its ``family`` (``planned`` or ``exploratory``)."""

    a: str
    b: str
    evaluator: str
    n_images: int
    n_nonzero: int | None = None
    t_plus: float | None = None
    t_minus: float | None = None
    p_value: float | None = None
    p_holm: float | None = None
    rank_biserial: float | None = None
    median_difference: float | None = None
    reason: str | None = None
    family: str | None = None
    family_size: int | None = None
    smallest_p: float | None = None
