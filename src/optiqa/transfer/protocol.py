"""The training protocol: content splits, repeats, the loss, early stopping, statistics.

* **Splits by reference content** (:func:`optiqa.data.iqa.content_split`): in each repeat the
  contents are shuffled with that repeat's seed, ``test_fraction`` of them (default 20%) are the
  test part, and ``val_fraction`` of the *remaining* contents (default 20%) are the validation
  part used for early stopping. No content is in two parts, and the test part is never looked at
  before the model is final. For no-reference databases every image is its own content. Items
  whose image does not change (the built-in set's static groups) carry no order and are left out.
* **Repeats**: repeat ``r`` uses seed ``seed + r`` for its split, the head's initialisation and
  the batch order (default 10 repeats). The backbone's initialisation is the same in every repeat.
* **Loss** (:func:`correlation_loss`), on predicted quality (higher = better) and targets oriented
  the same way: ``(1 - PLCC) + RankNet`` pairwise logistic loss over the batch's pairs with
  different targets, as in :mod:`optiqa.assess.fit` (Li et al., Norm-in-norm loss, ACM MM 2020,
  and Gao et al., Learning to rank for blind image quality assessment, IEEE TNNLS 2015, use the
  same two ingredients). On datasets evaluated within strata (the built-in known-order set, whose
  levels are ordered only inside one (content, distortion) group) only pairs inside one stratum
  are ranked and PLCC is not used; batches are then made of whole strata.
* **Early stopping** on the validation part's SRCC (within-stratum mean where the dataset is
  evaluated so): the state of the best epoch is restored; training stops after ``patience``
  epochs without improvement.
* **Statistics**: each repeat's test predictions go through
  :func:`optiqa.assess.benchmark.statistics` (SRCC, KRCC, PLCC after the 4-parameter logistic fit
  and RMSE; within-stratum means on the known-order set). :func:`summarize_repeats` reports mean,
  sample standard deviation (ddof=1) and median over repeats.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from optiqa.stats import correlation
from optiqa.assess.benchmark import statistics
from optiqa.assess.fit import plcc_loss, ranking_loss
from optiqa.data.iqa import IQADataset, content_split
from optiqa.core.errors import ConfigError, InputError


@dataclass(frozen=True)
class RepeatSplit:
    """Item indices of one repeat; parts share no reference content."""

    repeat: int
    seed: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def usable_items(dataset: IQADataset) -> np.ndarray:
    """Indices of items that carry an order (static known-order groups are left out)."""
    static = np.array([bool(it.extra.get("static")) for it in dataset.items], dtype=bool)
    return np.flatnonzero(~static)


def repeat_splits(dataset: IQADataset, repeats: int = 10, test_fraction: float = 0.2,
                  val_fraction: float = 0.2, seed: int = 0) -> list[RepeatSplit]:
    """One content split per repeat (seed ``seed + r``); ``test_fraction=0``: no test part."""
    if repeats < 1:
        raise ConfigError(f"repeats must be at least 1, got {repeats}", option="repeats")
    if not 0 <= test_fraction < 1 or not 0 < val_fraction < 1:
        raise ConfigError(f"test fraction must be in [0, 1) and validation fraction in (0, 1), "
                          f"got {test_fraction} and {val_fraction}")
    keep = usable_items(dataset)
    groups = dataset.groups[keep]
    need = 3 if test_fraction > 0 else 2
    if np.unique(groups).size < need:
        raise InputError(f"{dataset.name}: {np.unique(groups).size} reference content(s); a "
                         f"train/validation{'/test' if test_fraction > 0 else ''} split by "
                         f"content needs at least {need}")
    out = []
    for r in range(repeats):
        s = seed + r
        if test_fraction > 0:
            rest, test = content_split(groups, test_fraction, s)
        else:
            rest, test = np.arange(groups.size), np.array([], dtype=int)
        # a different stream for the validation draw, so it does not mirror the test draw
        tr, va = content_split(groups[rest], val_fraction, s + 1_000_003)
        out.append(RepeatSplit(r, s, keep[rest[tr]], keep[rest[va]], keep[test]))
    return out


def subset(dataset: IQADataset, idx) -> IQADataset:
    """The dataset restricted to ``idx`` (strata kept)."""
    idx = [int(i) for i in idx]
    return dataclasses.replace(
        dataset, items=[dataset.items[i] for i in idx],
        strata=[dataset.strata[i] for i in idx] if dataset.strata is not None else None)


def quality_targets(dataset: IQADataset) -> np.ndarray:
    """Targets oriented higher = better (the models predict quality)."""
    return (-1.0 if dataset.spec.lower_better else 1.0) * dataset.scores


def strata_ids(dataset: IQADataset) -> np.ndarray | None:
    """Integer stratum per item for within-stratum datasets, else None."""
    if dataset.evaluation != "within":
        return None
    _, inverse = np.unique(np.asarray(dataset.strata, dtype=object).astype(str),
                           return_inverse=True)
    return inverse


# ---------------------------------------------------------------------------------------------
# loss and batches
# ---------------------------------------------------------------------------------------------
def correlation_loss(q: torch.Tensor, y: torch.Tensor, strata: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """``(1 - PLCC) + RankNet`` on a batch; ranking inside strata only when ``strata`` is given.

    ``q``: predicted quality, ``y``: targets, both higher = better, shape ``(B,)``.
    """
    diff = y[:, None] - y[None, :]
    better = diff > 0
    if strata is not None:
        better &= strata[:, None] == strata[None, :]
    bi, wi = torch.nonzero(better, as_tuple=True)
    rank = ranking_loss(q, bi, wi) if bi.numel() else q.sum() * 0.0
    if strata is not None:
        return rank
    return (plcc_loss(q, y) if q.numel() > 1 else q.sum() * 0.0) + rank


def batch_order(n_items: int, batch_size: int, generator: torch.Generator,
                strata: np.ndarray | None = None) -> list[np.ndarray]:
    """Positions ``0..n_items-1`` in shuffled batches; whole strata per batch when given."""
    if strata is None:
        perm = torch.randperm(n_items, generator=generator).numpy()
        return [perm[i:i + batch_size] for i in range(0, n_items, batch_size)]
    labels = np.unique(strata)
    order = labels[torch.randperm(labels.size, generator=generator).numpy()]
    batches, current = [], []
    for label in order:
        current.extend(np.flatnonzero(strata == label).tolist())
        if len(current) >= batch_size:
            batches.append(np.array(current))
            current = []
    if current:
        batches.append(np.array(current))
    return batches


# ---------------------------------------------------------------------------------------------
# early stopping and evaluation
# ---------------------------------------------------------------------------------------------
class EarlyStopping:
    """Keep the best validation score's state; say when ``patience`` epochs brought nothing."""

    def __init__(self, patience: int = 5, min_delta: float = 1e-4):
        if patience < 1:
            raise ConfigError(f"patience must be at least 1, got {patience}", option="patience")
        self.patience, self.min_delta = patience, min_delta
        self.best = -math.inf
        self.best_epoch = -1
        self.best_state: dict | None = None
        self.bad_epochs = 0

    def step(self, epoch: int, score: float, module: torch.nn.Module) -> bool:
        """Record ``score`` for ``epoch``; True when training should stop."""
        score = score if math.isfinite(score) else -math.inf
        if score > self.best + self.min_delta or self.best_state is None:
            self.best, self.best_epoch, self.bad_epochs = score, epoch, 0
            self.best_state = copy.deepcopy({k: v.detach().cpu()
                                             for k, v in module.state_dict().items()})
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def restore(self, module: torch.nn.Module) -> None:
        if self.best_state is not None:
            module.load_state_dict(self.best_state)


def validation_srcc(pred: np.ndarray, dataset: IQADataset) -> float:
    """SRCC of predicted quality with the targets (within-stratum mean where applicable)."""
    target = quality_targets(dataset)
    if dataset.evaluation == "within":
        st = correlation.summarize_within(pred, target, np.asarray(dataset.strata, dtype=object),
                                          n_boot=0)
        return st["srcc"] if st["srcc"] is not None else math.nan
    return correlation.srcc(pred, target)


def evaluate(pred: np.ndarray, dataset: IQADataset, n_boot: int = 0, seed: int = 0) -> dict:
    """Test statistics of predicted quality (higher = better) on ``dataset``."""
    return statistics(np.asarray(pred, dtype=np.float64), dataset, metric_lower_better=False,
                      n_boot=n_boot, seed=seed)


def summarize_repeats(values) -> dict | None:
    """Mean, sample std (ddof=1; 0 for one repeat), median, min, max of finite values."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return None
    a = np.asarray(vals)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "median": float(np.median(a)), "min": float(a.min()), "max": float(a.max()),
            "n": int(a.size)}


def repeat_summary(per_repeat: list[dict]) -> dict:
    """``{srcc: {...}, plcc: {...}, krcc: {...}}`` over repeats' statistics dicts."""
    return {k: summarize_repeats([r.get(k) for r in per_repeat]) for k in ("srcc", "plcc",
                                                                            "krcc")}


__all__ = ["RepeatSplit", "repeat_splits", "usable_items", "subset", "quality_targets",
           "strata_ids", "correlation_loss", "batch_order", "EarlyStopping", "validation_srcc",
           "evaluate", "summarize_repeats", "repeat_summary"]
