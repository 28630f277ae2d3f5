"""The metric benchmark: score an IQA dataset with metrics, then correlate with its targets.

Scoring is batched (:mod:`optiqa.assess.batches`: a DataLoader, one reference per batch,
metrics run in the loader workers on the CPU).

With a :class:`~optiqa.core.store.ResultsStore`, per-item scores are looked up first (by
:func:`metric_fingerprint`, dataset and item, checked against the SHA-256 of the item's files)
and only the rest are computed; summaries are stored and reused only for the same items, pixels,
human scores, score file and statistics settings (:func:`stats_key`).

Sign convention: scores are correlated with the targets in the dataset's own orientation (e.g.
LIVE's DMOS, lower = better), after multiplying the metric's scores by -1 when its orientation
differs from the dataset's. A positive SRCC/KRCC/PLCC therefore always means the metric agrees
with the human (or known-order) judgments; PLCC and RMSE are after the 4-parameter logistic fit,
RMSE in the target's units.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from optiqa.stats import correlation
from optiqa.assess.batches import score_items
from optiqa.data.iqa import IQADataset, item_signatures
from optiqa.core.errors import InputError
from optiqa.metrics import create_metric
from optiqa.metrics.registry import get_spec
from optiqa.core.hashing import file_sha256, stable_hash
from optiqa.core.sources import code_fingerprint
from optiqa.core.store import ResultsStore

log = logging.getLogger(__name__)

STATS_VERSION = 1  # bump when the statistics change, so stored summaries are not reused
SIGN_NOTE = ("scores correlated with the dataset's targets in its own orientation, metric sign "
             "flipped where orientations differ: positive = agrees with the targets")
PLCC_NOTE = "PLCC and RMSE after the 4-parameter logistic fit (VQEG); RMSE in target units"


# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------
def orientation_sign(metric_lower_better: bool, dataset_lower_better: bool) -> int:
    """+1 when metric and targets share an orientation, else -1 (see module docstring)."""
    return 1 if metric_lower_better == dataset_lower_better else -1


def statistics(scores: np.ndarray, dataset: IQADataset, metric_lower_better: bool,
               n_boot: int = correlation.DEFAULT_BOOTSTRAP, seed: int = 0,
               level: float = 0.95) -> dict:
    """Correlation statistics of one metric's scores against the dataset's targets."""
    sign = orientation_sign(metric_lower_better, dataset.spec.lower_better)
    pred, target = sign * np.asarray(scores, dtype=np.float64), dataset.scores
    if dataset.evaluation == "within":
        strata = np.array(dataset.strata, dtype=object)
        static = np.array([bool(it.extra.get("static")) for it in dataset.items])
        keep = ~static
        st = correlation.summarize_within(pred[keep], target[keep], strata[keep],
                                          dataset.groups[keep], n_boot, level, seed)
        # strata made only of unchanged images have no order at all: count them as excluded
        n_static = len(set(strata[static].tolist()) - set(strata[keep].tolist()))
        if n_static:
            from optiqa.data.synthetic import STATIC_REASON

            st["strata_excluded"] = {STATIC_REASON: n_static, **st["strata_excluded"]}
        st.update(n=len(scores), plcc=None, rmse=None, plcc_ci=None, rmse_ci=None,
                  fit_error=None, fit_params=None,
                  note="means of within-(content, distortion) SRCC/KRCC; PLCC/RMSE not "
                       "defined for an ordinal target")
    else:
        st = correlation.summarize(pred, target, dataset.groups, n_boot, level, seed).as_dict()
    st["sign"] = sign
    return st


def stats_key(dataset: IQADataset, signatures: dict, n_boot: int, seed: int, level: float
              ) -> str:
    """Hash of everything a summary depends on besides the metric: the dataset's identity (its
    score file's hash and image root), every item with its pixels' signature, human score,
    content group and stratum, and the statistics settings."""
    strata = dataset.strata or [None] * len(dataset.items)
    return stable_hash({
        "version": STATS_VERSION, "n_boot": n_boot, "seed": seed, "level": level,
        "evaluation": dataset.evaluation, "dataset": dataset.identity,
        "items": [[it.key, signatures[it.key], it.score, it.group, s]
                  for it, s in zip(dataset.items, strata)]})


# ---------------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------------
def metric_fingerprint(name: str, metric, kwargs: dict | None = None) -> str:
    """Hash of everything that decides ``metric``'s scores (the key of its cached scores).

    The name, the registry's options and the user's (``kwargs``), the content of every file
    :meth:`weight_files` names (backbone weights, trained alpha/beta, model files), the source
    of every optiqa module the metric's class imports, transitively
    (:func:`optiqa.core.sources.code_fingerprint`), and the torch/timm versions (random-init
    backbones and numerics depend on them).
    """
    from importlib.metadata import version

    import torch

    spec = get_spec(name)
    return stable_hash({
        "name": name, "info": repr(spec.info),
        "registry": {k: repr(v) for k, v in spec.kwargs.items()},
        "options": {k: repr(v) for k, v in (kwargs or {}).items()},
        "weights": sorted(file_sha256(p) for p in metric.weight_files()),
        "code": code_fingerprint(type(metric)),
        "versions": {"torch": torch.__version__, "timm": version("timm")}})


def assess(metric_names, dataset: IQADataset, device: str = "cpu", batch_size: int = 8,
           workers: int = 2, store: ResultsStore | None = None,
           n_boot: int = correlation.DEFAULT_BOOTSTRAP, seed: int = 0, level: float = 0.95,
           progress: bool = True, metric_kwargs: dict | None = None,
           keep_scores: bool = False) -> list[dict]:
    """Score ``dataset`` with every metric and return one result dict per metric.

    All metrics are created before any image is read (unknown names and missing weights fail
    fast). ``metric_kwargs`` maps a metric name to constructor options (e.g. ``weights=``).
    With ``keep_scores`` each result also holds the per-item scores (``scores``, in the order of
    ``dataset.items``), for analyses that resample items.
    """
    names = list(dict.fromkeys(metric_names))
    if not names:
        raise InputError("no metric given (use -m NAME; `optiqa metrics` lists them)")
    if dataset.spec.kind != "fr":
        raise InputError(f"dataset {dataset.name} is no-reference (images without references); "
                         f"{', '.join(names)}: full-reference metric(s) need an FR dataset")
    metric_kwargs = metric_kwargs or {}
    metrics = {n: create_metric(n, device=device, **metric_kwargs.get(n, {})) for n in names}
    fingerprints = {n: metric_fingerprint(n, m, metric_kwargs.get(n, {}))
                    for n, m in metrics.items()}
    keys = dataset.keys
    sigs = item_signatures(dataset.items)
    dkey = dataset.store_key

    scores, from_store = {}, {}
    todo = {}
    for n in names:
        cached = store.get_scores(dkey, fingerprints[n], sigs) if store is not None else {}
        arr = np.array([cached.get(k, np.nan) for k in keys])
        scores[n], from_store[n] = arr, int(np.isfinite(arr).sum())
        if from_store[n] < len(keys):
            todo[n] = metrics[n]
    seconds = {n: 0.0 for n in names}
    if todo:
        need = sorted({i for n in todo for i in np.flatnonzero(~np.isfinite(scores[n]))})
        items = [dataset.items[i] for i in need]
        t0 = time.perf_counter()
        fresh = score_items(todo, items, device, batch_size, workers, progress,
                            desc=f"{dataset.name}: {', '.join(todo)}")
        elapsed = time.perf_counter() - t0
        for n, vals in fresh.items():
            seconds[n] = elapsed
            bad = [items[j].key for j in np.flatnonzero(~np.isfinite(vals))]
            if bad:
                raise InputError(f"{n} gave non-finite scores for {len(bad)} item(s): "
                                 f"{', '.join(bad[:5])}")
            scores[n][need] = vals
            if store is not None:
                store.put_scores(dkey, n, fingerprints[n],
                                 [(items[j].key, sigs[items[j].key], v) for j, v in
                                  enumerate(vals)])

    results = []
    for n in names:
        info = metrics[n].info
        skey = stats_key(dataset, sigs, n_boot, seed, level)
        st = store.get_summary(dkey, fingerprints[n], skey) if store is not None else None
        summary_from_store = st is not None
        if st is None:
            st = statistics(scores[n], dataset, info.lower_better, n_boot, seed, level)
            if store is not None:
                store.put_summary(dkey, n, fingerprints[n], skey, st)
        results.append({
            "dataset": dataset.name, "metric": n, **st,
            "evaluation": dataset.evaluation, "target": dataset.spec.score_meaning,
            "metric_orientation": info.orientation, "label": dataset.label,
            "missing": len(dataset.missing), "from_store": from_store[n],
            "summary_from_store": summary_from_store,
            "seconds": round(seconds[n], 3), "fingerprint": fingerprints[n],
        })
        if keep_scores:
            results[-1]["scores"] = [float(v) for v in scores[n]]
    return results
