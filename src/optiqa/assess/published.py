"""Published correlations of FR metrics, shown next to ours by ``optiqa assess --compare-published``.

The figures live in the package data file ``published_fr.csv`` (source and protocol in its
header: IQA-PyTorch's FR benchmark table on CSIQ, LIVE, TID2008 and TID2013). They are reference
points, not targets: the source's PLCC has no logistic fit, and its numbers are magnitudes.
"""
from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from functools import lru_cache

from optiqa.data.tabular import read_csv_dicts

DATA_FILE = "published_fr.csv"
SOURCE = ("IQA-PyTorch FR benchmark (github.com/chaofengc/IQA-PyTorch, "
          "tests/FR_benchmark_results.csv)")


@dataclass(frozen=True)
class PublishedFigure:
    metric: str          # the source's metric name
    optiqa_metric: str   # ours ("" when we have no equivalent)
    dataset: str
    plcc: float
    srcc: float
    krcc: float


@lru_cache(maxsize=None)
def published_figures() -> tuple[PublishedFigure, ...]:
    with importlib.resources.as_file(
            importlib.resources.files("optiqa.assess").joinpath(DATA_FILE)) as path:
        rows = read_csv_dicts(path, "published figures", comment="#")
    return tuple(PublishedFigure(r["metric"], r["optiqa_metric"], r["dataset"], float(r["plcc"]),
                                 float(r["srcc"]), float(r["krcc"])) for r in rows)


def published_datasets() -> list[str]:
    return sorted({f.dataset for f in published_figures()})


def lookup(metric: str, dataset: str) -> PublishedFigure | None:
    """The published figure for our metric name on a dataset, or ``None`` if not covered."""
    for f in published_figures():
        if f.dataset == dataset and (f.optiqa_metric == metric or (not f.optiqa_metric and
                                                                     f.metric == metric)):
            return f
    return None


def add_published(results: list[dict]) -> list[dict]:
    """Add ``published_srcc/plcc/krcc`` (or None) and ``published_source`` to result dicts."""
    for r in results:
        f = lookup(r["metric"], r["dataset"])
        r["published_srcc"] = f.srcc if f else None
        r["published_plcc"] = f.plcc if f else None
        r["published_krcc"] = f.krcc if f else None
        r["published_source"] = SOURCE if f else None
    return results
