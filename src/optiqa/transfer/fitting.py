"""Training one repeat: the head on cached descriptors (frozen) or the whole model (finetune).

Both loops follow :mod:`optiqa.transfer.protocol`: AdamW on :func:`~.protocol.correlation_loss`,
one validation SRCC per epoch on the repeat's validation contents, early stopping with the best
epoch's state restored. The test part is not touched here.

* :func:`fit_head` trains only the head. Its descriptors come from a callable, so the same loop
  runs on the cached matrix (``mode="frozen"``, the default) or recomputes them with the backbone
  for every batch (``cache=False``; what a pipeline without the cache would do, kept for
  ``bench/transfer_speed.py``). Given the same descriptors both give the same model.
* :func:`finetune` trains backbone and head on random crops (``crop``, same position in the
  distorted image and its reference; default 224, at most the smallest image side) with the
  backbone at ``backbone_lr`` and the head at ``lr``; validation and test use full images.
  The head's input standardisation comes from the initial backbone's training descriptors.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from optiqa.assess.batches import image_size
from optiqa.data.io import read_image
from optiqa.core.errors import ConfigError, InputError
from optiqa.transfer.features import extract
from optiqa.transfer.models import DistsHead, IQAModel
from optiqa.transfer.protocol import (EarlyStopping, RepeatSplit, batch_order, correlation_loss,
                                      quality_targets, strata_ids, subset, validation_srcc)


@dataclass
class TrainSettings:
    epochs: int = 30            # at most; early stopping usually ends sooner
    patience: int = 5
    batch_size: int = 32        # items per optimisation step
    lr: float = 1e-3            # head
    backbone_lr: float = 2e-5   # finetune only
    weight_decay: float = 1e-4
    crop: int = 224             # finetune training crops
    device: str = "cpu"
    eval_batch_size: int = 8    # images per backbone pass when extracting/evaluating
    workers: int = 0

    def check(self) -> None:
        for name in ("epochs", "patience", "batch_size", "crop", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "backbone_lr"):
            if not float(getattr(self, name)) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")


def _optimizer(groups, settings: TrainSettings) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=settings.lr, weight_decay=settings.weight_decay)


def fit_head(head: torch.nn.Module, descriptors, dataset, split: RepeatSplit,
             settings: TrainSettings) -> dict:
    """Train ``head`` on descriptors ``descriptors(indices) -> (len, d)`` tensor.

    ``descriptors`` is usually ``cache.__getitem__`` (rows of the cached matrix).
    """
    settings.check()
    dev = settings.device
    train, val = split.train, split.val
    y = torch.as_tensor(quality_targets(dataset), dtype=torch.float32, device=dev)
    strata = strata_ids(dataset)
    st = torch.as_tensor(strata, device=dev) if strata is not None else None

    def feats(idx) -> torch.Tensor:
        return descriptors(idx).to(dev)

    if not isinstance(head, DistsHead):  # its terms are bounded: nothing to standardise
        head.fit_input(feats(train))
    opt = _optimizer([p for p in head.parameters() if p.requires_grad], settings)
    g = torch.Generator().manual_seed(split.seed)
    val_ds = subset(dataset, val)
    stopper = EarlyStopping(settings.patience)
    history = []
    for epoch in range(settings.epochs):
        head.train()
        losses = []
        for b in batch_order(train.size, settings.batch_size, g,
                             strata[train] if strata is not None else None):
            idx = train[b]
            loss = correlation_loss(head(feats(idx)), y[idx],
                                    st[idx] if st is not None else None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        head.eval()
        with torch.no_grad():
            score = validation_srcc(head(feats(val)).double().cpu().numpy(), val_ds)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_srcc": score})
        if stopper.step(epoch, score, head):
            break
    stopper.restore(head)
    head.eval()
    return {"best_epoch": stopper.best_epoch, "epochs_run": len(history),
            "val_srcc": stopper.best, "history": history}


def recomputed(model: IQAModel, items, settings: TrainSettings):
    """``descriptors(indices)`` that runs the backbone every time (no cache)."""
    def descriptors(idx) -> torch.Tensor:
        return extract(model, [items[int(i)] for i in np.atleast_1d(idx)], settings.device,
                       settings.eval_batch_size, 0).values
    return descriptors


@torch.no_grad()
def predict(model: IQAModel, items, settings: TrainSettings) -> np.ndarray:
    """Predicted quality of ``items`` on full images (eval mode)."""
    d = extract(model, items, settings.device, settings.eval_batch_size, settings.workers)
    model.eval()
    return model.head(d.values.to(settings.device)).double().cpu().numpy()


# ---------------------------------------------------------------------------------------------
# fine-tuning
# ---------------------------------------------------------------------------------------------
class CropItems(Dataset):
    """``(distorted crop, reference crop or empty, position)``; the crop is drawn per epoch."""

    def __init__(self, items, crop: int, fr: bool, seed: int):
        self.items, self.crop, self.fr, self.seed = items, crop, fr, seed
        self.epoch = 0

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        it = self.items[i]
        x = read_image(it.dist)
        ref = read_image(it.ref) if self.fr else None
        if ref is not None and ref.shape != x.shape:
            raise InputError(f"{it.dist}: size differs from its reference {it.ref}")
        _, h, w = x.shape
        rng = np.random.default_rng([self.seed, self.epoch, i])
        top, left = int(rng.integers(0, h - self.crop + 1)), int(rng.integers(0, w - self.crop + 1))
        win = (slice(None), slice(top, top + self.crop), slice(left, left + self.crop))
        return x[win], (ref[win] if ref is not None else torch.empty(0)), i


def finetune(model: IQAModel, dataset, split: RepeatSplit, settings: TrainSettings) -> dict:
    """Train the whole ``model`` (backbone and head); see the module docstring."""
    settings.check()
    dev = settings.device
    items = dataset.items
    train_items = [items[i] for i in split.train]
    val_ds = subset(dataset, split.val)
    crop = min([settings.crop] + [min(image_size(it.dist)) for it in train_items])
    if crop < model.backbone.spec.min_size:
        raise ConfigError(f"fine-tuning crop {crop} (crop {settings.crop}, at most the "
                          f"smallest image side) is below backbone {model.backbone.name!r}'s "
                          f"minimum input of {model.backbone.spec.min_size}", option="crop")
    if not isinstance(model.head, DistsHead):
        model.head.fit_input(extract(model, train_items, dev, settings.eval_batch_size,
                                     settings.workers).values)
    y = torch.as_tensor(quality_targets(dataset)[split.train], dtype=torch.float32)
    strata = strata_ids(dataset)
    strata = strata[split.train] if strata is not None else None
    st = torch.as_tensor(strata) if strata is not None else None
    backbone_params = [p for p in model.backbone.parameters() if p.requires_grad]
    opt = _optimizer([{"params": list(model.head.parameters()), "lr": settings.lr},
                      {"params": backbone_params, "lr": settings.backbone_lr}], settings)
    data = CropItems(train_items, crop, model.kind == "fr", split.seed)
    g = torch.Generator().manual_seed(split.seed)
    stopper = EarlyStopping(settings.patience)
    history = []
    for epoch in range(settings.epochs):
        data.epoch = epoch
        batches = [b.tolist() for b in batch_order(len(train_items), settings.batch_size, g,
                                                   strata)]
        loader = DataLoader(data, batch_sampler=batches, num_workers=settings.workers)
        model.train()
        losses = []
        for x, ref, pos in loader:
            q = model(x.to(dev), ref.to(dev) if model.kind == "fr" else None)
            loss = correlation_loss(q, y[pos].to(dev), st[pos].to(dev) if st is not None
                                    else None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        score = validation_srcc(predict(model, val_ds.items, settings), val_ds)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_srcc": score,
                        "crop": crop})
        if stopper.step(epoch, score, model):
            break
    stopper.restore(model)
    model.eval()
    return {"best_epoch": stopper.best_epoch, "epochs_run": len(history),
            "val_srcc": stopper.best, "history": history, "crop": crop}


__all__ = ["TrainSettings", "fit_head", "recomputed", "predict", "finetune", "CropItems"]
