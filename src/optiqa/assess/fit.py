"""Fitting the alpha/beta weights of the DISTS-style family on an IQA dataset.

DISTS (Ding et al., IEEE TPAMI 2020) is linear in its weights: with the per-channel texture
and structure similarities ``l_j``, ``s_j`` of every backbone channel ``j`` (see
:func:`optiqa.metrics.deep.dists_from_features`)::

    D(x, y) = sum_j alpha_j (1 - l_j) + beta_j (1 - s_j),   alpha, beta >= 0,
              sum(alpha) + sum(beta) = 1

So the frozen backbone runs once over the dataset to cache the ``2 C`` terms of every item
(reference features computed once per reference), and fitting is a small optimisation over the
cached matrix: seconds, whatever the backbone.

Protocol: items are split by reference content (no content in both parts); the weights are
parametrised as ``softplus(theta)`` (non-negative) and normalised; the loss is rank-aware:
``(1 - PLCC) + pairwise logistic ranking loss`` on pooled datasets (pairs of items with different
targets, in random minibatches), the ranking loss alone on within-group datasets such as the
built-in known-order set (pairs only inside one (content, distortion) group, where levels are
comparable). SRCC on the held-out contents is reported before (the metric's current weights:
uniform for ``dists_<backbone>``) and after. The written file is a dict with ``alpha`` and
``beta`` that ``create_metric('dists_<backbone>', weights=path)`` loads.
"""
from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from optiqa.models import backbones
from optiqa.assess.benchmark import statistics
from optiqa.assess.batches import PairBatches, loader_for, size_batches
from optiqa.data.io import as_float
from optiqa.core.atomic import atomic_torch_save
from optiqa.data.iqa import IQADataset, content_split
from optiqa.core.errors import ConfigError, InputError
from optiqa.metrics import create_metric

log = logging.getLogger(__name__)


def backbone_of(metric_name: str) -> str:
    """``dists_<backbone>`` -> backbone; ``dists`` (the published one) -> ``vgg16``."""
    if metric_name == "dists":
        return "vgg16"
    if metric_name.startswith("dists_") and metric_name[6:] in backbones.names():
        return metric_name[6:]
    raise ConfigError(f"fit learns the alpha/beta of the DISTS-style family: give -m dists_<bb> "
                      f"with bb one of {', '.join(backbones.names())}; got {metric_name!r}")


# ---------------------------------------------------------------------------------------------
# cached terms
# ---------------------------------------------------------------------------------------------
@torch.inference_mode()
def dists_terms(metric, dataset: IQADataset, device: str = "cpu", batch_size: int = 8,
                workers: int = 2, progress: bool = True) -> np.ndarray:
    """Per-item texture and structure terms ``(N, 2C)`` such that ``D = terms @ [alpha; beta]``.

    Computed with the metric's own :func:`~optiqa.metrics.deep.dists_from_features`, given
    identity matrices as weights, and checked against the metric's score on the first item.
    """
    from optiqa.metrics.deep import dists_from_features

    items = dataset.items
    c = sum(metric.backbone.channels)
    eye, zero = torch.eye(c, device=device), torch.zeros(c, c, device=device)
    select_t, select_s = torch.cat([eye, zero], 1), torch.cat([zero, eye], 1)
    terms = np.zeros((len(items), 2 * c), dtype=np.float32)
    batches = size_batches(items, max(1, batch_size))
    loader = loader_for(PairBatches(items, batches), workers)
    ref_key, fr = None, None
    checked = False
    with tqdm(total=len(items), desc=f"{dataset.name}: features", unit="pair",
              disable=not progress) as bar:
        for batch in loader:
            if "error" in batch:
                raise InputError(batch["error"])
            idx = batch["idx"]
            x, ref = as_float(batch["x"].to(device)), as_float(batch["ref"].to(device))
            if items[int(idx[0])].ref != ref_key:  # one backbone pass per reference
                ref_key, fr = items[int(idx[0])].ref, metric.features(ref)
            fx = metric.features(x)
            batch_fr = [f.expand(x.shape[0], *f.shape[1:]) for f in fr]
            t = dists_from_features(fx, batch_fr, select_t, select_s)
            if not checked:  # the identity trick must reproduce the metric exactly
                expected = float(metric(x[:1], ref)[0])
                got = float(t[0] @ torch.cat([metric.alpha, metric.beta]))
                if abs(got - expected) > 1e-4 * max(1.0, abs(expected)):
                    raise RuntimeError(f"cached DISTS terms give {got:.6g}, the metric "
                                       f"{expected:.6g}: deep.py's formula changed shape")
                checked = True
            terms[idx.numpy()] = t.float().cpu().numpy()
            bar.update(len(idx))
    return terms


# ---------------------------------------------------------------------------------------------
# the optimisation
# ---------------------------------------------------------------------------------------------
def _pairs_within(strata: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (better, worse) index pairs inside each stratum."""
    better, worse = [], []
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        ti = target[idx]
        i, j = np.meshgrid(idx, idx, indexing="ij")
        m = ti[:, None] > ti[None, :]
        better.append(i[m])
        worse.append(j[m])
    return np.concatenate(better), np.concatenate(worse)


def ranking_loss(q: torch.Tensor, better: torch.Tensor, worse: torch.Tensor) -> torch.Tensor:
    """Pairwise logistic (RankNet) loss on standardised predicted quality."""
    z = (q - q.mean()) / (q.std() + 1e-12)
    return F.softplus(-4.0 * (z[better] - z[worse])).mean()


def plcc_loss(q: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    qc, yc = q - q.mean(), y - y.mean()
    return 1.0 - (qc * yc).sum() / (qc.norm() * yc.norm() + 1e-12)


def fit_weights(terms: np.ndarray, quality: np.ndarray, strata=None, init=None,
                steps: int = 300, lr: float = 0.05, batch: int = 2048, seed: int = 0
                ) -> np.ndarray:
    """Weights ``w >= 0`` (``sum = 1``, ``2C`` values) so that ``-terms @ w`` ranks like ``quality``.

    ``quality``: targets oriented higher = better. With ``strata`` only pairs inside one
    stratum are ranked (within-group datasets); otherwise 1 - PLCC plus the ranking loss over
    random minibatches. ``init``: starting weights (default uniform).
    """
    g = torch.Generator().manual_seed(seed)
    t = torch.from_numpy(np.ascontiguousarray(terms, dtype=np.float32))
    y = torch.from_numpy(np.asarray(quality, dtype=np.float32))
    n, k = t.shape
    w0 = torch.full((k,), 1.0 / k) if init is None else torch.as_tensor(init, dtype=torch.float32)
    # softplus^-1 of weights scaled to mean 1 (a well-conditioned start); scale is irrelevant
    w0 = (w0 / w0.mean()).clamp_min(1e-6)
    theta = torch.log(torch.expm1(w0)).requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    if strata is not None:
        b, wo = _pairs_within(np.asarray(strata), np.asarray(quality))
        if b.size == 0:
            raise InputError("no pair of items with different targets inside any group")
        better, worse = torch.from_numpy(b), torch.from_numpy(wo)
    for _ in range(steps):
        w = F.softplus(theta)
        w = w / w.sum()
        if strata is not None:
            loss = ranking_loss(-(t @ w), better, worse)
        else:
            idx = torch.randperm(n, generator=g)[:batch] if n > batch else torch.arange(n)
            q, yb = -(t[idx] @ w), y[idx]
            diff = yb[:, None] - yb[None, :]
            bi, wi = torch.nonzero(diff > 0, as_tuple=True)
            loss = plcc_loss(q, yb) + (ranking_loss(q, bi, wi) if bi.numel() else 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        w = F.softplus(theta)
        return (w / w.sum()).numpy().astype(np.float64)


# ---------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------
def subset(dataset: IQADataset, idx) -> IQADataset:
    idx = list(idx)
    return dataclasses.replace(
        dataset, items=[dataset.items[i] for i in idx],
        strata=[dataset.strata[i] for i in idx] if dataset.strata is not None else None)


def _fit_view(dataset: IQADataset) -> IQADataset:
    """The dataset as the fit ranks it.

    Pooled datasets as they are. On within-group sets (the known-order set) the order inside
    one (content, distortion) group is monotone for nearly any non-negative weighting of
    DISTS's terms, so it cannot tell weightings apart; the fit instead ranks levels across
    distortion types inside one content (the same five severity levels are used for every
    photo), which weightings do change, and which generalises to held-out contents only if
    the weights capture something about the distortions rather than the photos.
    """
    if dataset.evaluation != "within":
        return dataset
    return dataclasses.replace(dataset, strata=[it.group for it in dataset.items])


def fit_dists(metric_name: str, dataset: IQADataset, out, device: str = "cpu",
              batch_size: int = 8, workers: int = 2, test_fraction: float = 0.2, seed: int = 0,
              steps: int = 300, lr: float = 0.05, n_boot: int = 0, progress: bool = True) -> dict:
    """Fit alpha/beta of ``metric_name`` on ``dataset``, write them to ``out``, report SRCC.

    Returns a dict with the split, the held-out statistics before and after, and timings.
    """
    backbone = backbone_of(metric_name)
    if dataset.spec.kind != "fr":
        raise InputError(f"dataset {dataset.name} is no-reference; DISTS needs references")
    metric = create_metric(metric_name, device=device)
    t0 = time.perf_counter()
    terms = dists_terms(metric, dataset, device, batch_size, workers, progress)
    t_features = time.perf_counter() - t0
    ranked = _fit_view(dataset)
    train, test = content_split(ranked.groups, test_fraction, seed)
    if dataset.evaluation == "within":
        # unchanged images (e.g. a desaturated greyscale photo) carry no order: leave them out
        static = np.array([bool(it.extra.get("static")) for it in dataset.items])
        train, test = train[~static[train]], test[~static[test]]
    sign = 1 if not dataset.spec.lower_better else -1
    quality = sign * dataset.scores     # higher = better, for the loss
    strata = np.asarray(ranked.strata) if ranked.evaluation == "within" else None
    w_before = torch.cat([metric.alpha, metric.beta]).cpu().double().numpy()
    t1 = time.perf_counter()
    w = fit_weights(terms[train], quality[train],
                    strata[train] if strata is not None else None, init=w_before,
                    steps=steps, lr=lr, seed=seed)
    t_fit = time.perf_counter() - t1
    held_out = subset(ranked, test)
    before = statistics(terms[test] @ w_before, held_out, True, n_boot, seed)
    after = statistics(terms[test] @ w, held_out, True, n_boot, seed)
    train_fit = statistics(terms[train] @ w, subset(ranked, train), True, 0, seed)
    extra = {}
    if ranked is not dataset:  # also the standard within-(content, distortion) statistics
        std_held_out = subset(dataset, test)
        extra = {"heldout_before_within_type": statistics(terms[test] @ w_before, std_held_out,
                                                          True, 0, seed),
                 "heldout_after_within_type": statistics(terms[test] @ w, std_held_out, True,
                                                         0, seed)}
    c = terms.shape[1] // 2
    payload = {
        "alpha": torch.from_numpy(w[:c]).float(), "beta": torch.from_numpy(w[c:]).float(),
        "metric": metric_name, "backbone": backbone, "dataset": dataset.store_key,
        "test_contents": sorted(set(dataset.groups[test].tolist())),
        "srcc_before": float(before["srcc"]) if before["srcc"] is not None else float("nan"),
        "srcc_after": float(after["srcc"]) if after["srcc"] is not None else float("nan"),
        "seed": seed, "steps": steps, "lr": lr,
    }
    atomic_torch_save(payload, out)
    return {
        "metric": metric_name, "backbone": backbone, "dataset": dataset.name, "out": str(out),
        "label": dataset.label, "n_train": int(train.size), "n_test": int(test.size),
        "train_contents": int(len(set(dataset.groups[train].tolist()))),
        "test_contents": payload["test_contents"],
        "ranking": ranked.evaluation if ranked is dataset else
        "within content, across distortion types (levels as severity; a proxy, not human opinion)",
        "heldout_before": before, "heldout_after": after, "train_after": train_fit, **extra,
        "seconds_features": round(t_features, 2), "seconds_fit": round(t_fit, 2),
    }
