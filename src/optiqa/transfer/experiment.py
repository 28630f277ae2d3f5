"""One transfer experiment: a backbone initialisation x model kind x mode on an IQA dataset.

:func:`run_transfer` builds the backbone once (``random`` | ``imagenet`` | ``gan:<path>``), then
for each repeat of :mod:`optiqa.transfer.protocol` trains a fresh model on the repeat's training
contents (early stopping on its validation contents) and evaluates it on the held-out test
contents and, for cross-database results, on every ``cross`` dataset in full. In ``frozen``
mode the descriptors of every dataset are extracted once and shared by all repeats.

Sign convention: the models predict quality, higher = better; predictions are correlated with
each dataset's targets in that dataset's own orientation (sign flipped for lower-better targets
such as DMOS or the known-order set's distortion level), so a positive SRCC/PLCC always means
agreement. PLCC is after the 4-parameter logistic fit (VQEG); on datasets evaluated within
strata (the built-in known-order set) SRCC/KRCC are within-stratum means and PLCC is not defined.

With a :class:`~optiqa.core.store.ResultsStore` the result goes into its generic ``results``
table (stage ``transfer``) under a key that hashes everything that determines it (options,
dataset versions, the discriminator checkpoint's content); the run record is marked complete
after the result is written, and a complete result is returned from the store unless ``force``.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import time
from dataclasses import dataclass, field

import torch

from optiqa.models import backbones
from optiqa.assess.benchmark import PLCC_NOTE
from optiqa.data.iqa import IQADataset
from optiqa.core.errors import ConfigError, InputError
from optiqa.core.hashing import stable_hash
from optiqa.core.sources import code_fingerprint
from optiqa.core.store import run_once
from optiqa.transfer.features import extract
from optiqa.transfer.fitting import TrainSettings, finetune, fit_head, predict, recomputed
from optiqa.transfer.init import (create_backbone, describe_init, find_discriminator_checkpoint,
                                  parse_init)
from optiqa.transfer.models import DEFAULT_HIDDEN, HEADS, KINDS, create_model
from optiqa.transfer.protocol import (evaluate, repeat_splits, repeat_summary, subset,
                                      usable_items)

log = logging.getLogger(__name__)

STAGE = "transfer"
RESULT_VERSION = 1   # bump when the protocol changes, so stored results are not reused
MODES = ("frozen", "finetune")
SIGN_NOTE = ("models predict quality (higher = better), correlated with each dataset's targets in "
             "its own orientation: positive = agrees")
_STAT_KEYS = ("n", "srcc", "krcc", "plcc", "rmse", "strata_used")


@dataclass
class TransferOptions:
    backbone: str
    init: str = "imagenet"
    kind: str = "nr"
    mode: str = "frozen"
    head: str | None = None        # default: linear (a linear probe) when frozen, mlp finetuned
    hidden: int = DEFAULT_HIDDEN
    repeats: int = 10
    test_fraction: float = 0.2
    val_fraction: float = 0.2
    seed: int = 0
    cache: bool = True             # frozen: extract descriptors once (False: every batch)
    train: TrainSettings = field(default_factory=TrainSettings)

    @property
    def resolved_head(self) -> str:
        return self.head or ("linear" if self.mode == "frozen" else "mlp")

    def check(self) -> None:
        backbones.spec(self.backbone)
        init = parse_init(self.init)
        if init.kind == "gan":  # the run or checkpoint exists (read later, once data is loaded)
            find_discriminator_checkpoint(init.path)
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}",
                              option="kind")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}",
                              option="mode")
        if self.resolved_head not in HEADS:
            raise ConfigError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}",
                              option="head")
        self.train.check()

    def describe(self) -> dict:
        """Everything that determines the result (not device, workers, progress)."""
        d = dataclasses.asdict(self)
        d["head"] = self.resolved_head
        d["train"] = {k: v for k, v in d["train"].items() if k not in ("device", "workers")}
        d.pop("cache")  # same descriptors, same model: a speed setting
        return d


def result_config(opts: TransferOptions, dataset: IQADataset, cross=(), init_info=None) -> dict:
    """Everything that decides a transfer result: the options, the data (identity, items, their
    pixels and human scores), the initialisation (weights file hashes), the code of the protocol
    and the library versions. A stored result is reused only under an equal description."""
    from importlib.metadata import version

    import torch

    return {"v": RESULT_VERSION, "options": opts.describe(), "dataset": dataset.fingerprint(),
            "cross": [c.fingerprint() for c in cross], "init": init_info or {},
            "code": code_fingerprint(_run),
            "versions": {"torch": torch.__version__, "timm": version("timm")}}


def result_key(opts: TransferOptions, dataset: IQADataset, config: dict, init_info=None) -> str:
    """``<kind>/<backbone>/<init>/<mode>/<dataset>/<hash of the config>`` for the store."""
    init = opts.init if not opts.init.startswith("gan:") else f"gan-{(init_info or {}).get('run')}"
    return f"{opts.kind}/{opts.backbone}/{init}/{opts.mode}/{dataset.name}/{stable_hash(config, 12)}"


def _compact(stats: dict) -> dict:
    return {k: stats.get(k) for k in _STAT_KEYS if k in stats}


def _check_kinds(opts: TransferOptions, datasets) -> None:
    for ds in datasets:
        if opts.kind == "fr" and ds.spec.kind != "fr":
            raise InputError(f"dataset {ds.name} has no reference images, so a full-reference "
                             "model (kind fr) cannot use it; use kind nr", option="kind")


def _usable(ds: IQADataset) -> IQADataset:
    return subset(ds, usable_items(ds))


def run_transfer(opts: TransferOptions, dataset: IQADataset, cross=(), store=None,
                 force: bool = False, progress: bool = False, known=None) -> dict:
    """Train and evaluate ``opts`` on ``dataset`` (and ``cross``); see the module docstring.

    ``known(key)``: a result computed before under ``key`` and kept elsewhere (a study's result
    file, written by another process), or None; a known result is returned (and stored)
    instead of being computed again."""
    opts.check()
    cross = [_usable(c) for c in cross]
    _check_kinds(opts, [dataset, *cross])
    if opts.test_fraction == 0 and not cross:
        raise ConfigError("test_fraction 0 leaves no test part: give cross-database test sets",
                          option="test_fraction")
    t_start = time.perf_counter()
    splits = repeat_splits(dataset, opts.repeats, opts.test_fraction, opts.val_fraction,
                           opts.seed)  # data problems fail before any network is built
    # described without building the backbone: a result found under its key needs none
    init_info = describe_init(opts.backbone, opts.init, seed=opts.seed)
    config = result_config(opts, dataset, cross, init_info)
    key = result_key(opts, dataset, config, init_info)

    def compute() -> dict:
        found = known(key) if known is not None else None
        if found is not None:
            return found
        backbone, built_info = create_backbone(opts.backbone, opts.init, seed=opts.seed)
        if built_info != init_info:  # the files changed between describing and building
            raise InputError(f"{opts.init}: the initialisation changed while the transfer "
                             "experiment started (its weights or checkpoint were rewritten); "
                             "run it again")
        result = _run(opts, dataset, cross, splits, backbone, init_info, progress)
        result.update(key=key, seconds=round(time.perf_counter() - t_start, 2), from_store=False)
        return result

    return run_once(store, STAGE, key, config, compute, force)


def _run(opts, dataset, cross, splits, backbone, init_info, progress) -> dict:
    settings = opts.train
    dev = settings.device
    backbone = backbone.to(dev)
    frozen = opts.mode == "frozen"
    if frozen:
        backbone.requires_grad_(False)

    def new_model(seed: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            bb = backbone if frozen else copy.deepcopy(backbone)
            return create_model(opts.kind, bb, opts.resolved_head, opts.hidden).to(dev)

    features, caches = None, {}
    if frozen and opts.cache:
        probe = new_model(opts.seed)
        caches[dataset.name] = extract(probe, dataset.items, dev, settings.eval_batch_size,
                                       settings.workers, progress, f"{dataset.name}: features")
        for c in cross:
            caches[f"cross:{c.name}"] = extract(probe, c.items, dev, settings.eval_batch_size,
                                                settings.workers, progress,
                                                f"{c.name}: features")
        d = caches[dataset.name]
        features = {"seconds": round(sum(c.seconds for c in caches.values()), 3),
                    "images": sum(c.images for c in caches.values()),
                    "images_per_second": round(d.images_per_second, 2),
                    "dim": int(d.values.shape[1])}

    per_repeat = []
    for split in splits:
        t0 = time.perf_counter()
        model = new_model(split.seed)
        test_ds = subset(dataset, split.test)
        if frozen and opts.cache:
            values = caches[dataset.name].values.to(dev)
            fit = fit_head(model.head, lambda idx, v=values: v[torch.as_tensor(idx)], dataset,
                           split, settings)
            with torch.no_grad():
                test_pred = model.head(values[torch.as_tensor(split.test)]).double().cpu().numpy()
                cross_pred = {c.name: model.head(caches[f"cross:{c.name}"].values.to(dev))
                              .double().cpu().numpy() for c in cross}
        else:
            if frozen:
                fit = fit_head(model.head, recomputed(model, dataset.items, settings), dataset,
                               split, settings)
            else:
                fit = finetune(model, dataset, split, settings)
            test_pred = predict(model, test_ds.items, settings)
            cross_pred = {c.name: predict(model, c.items, settings) for c in cross}
        rec = {"repeat": split.repeat, "seed": split.seed, "n_train": int(split.train.size),
               "n_val": int(split.val.size), "n_test": int(split.test.size),
               "test_contents": sorted(set(dataset.groups[split.test].tolist()))[:50],
               "best_epoch": fit["best_epoch"], "epochs_run": fit["epochs_run"],
               "val_srcc": fit["val_srcc"],
               "val_history": [h["val_srcc"] for h in fit["history"]],
               "loss_history": [h["loss"] for h in fit["history"]],
               "test": _compact(evaluate(test_pred, test_ds)) if split.test.size else None,
               "cross": {c.name: _compact(evaluate(cross_pred[c.name], c)) for c in cross},
               "seconds": round(time.perf_counter() - t0, 3)}
        per_repeat.append(rec)
        log.info("repeat %d: val SRCC %.4f (epoch %d), test %s", split.repeat, fit["val_srcc"],
                 fit["best_epoch"], rec["test"])

    test_runs = [r["test"] for r in per_repeat if r["test"] is not None]
    return {
        "stage": STAGE, "kind": opts.kind, "backbone": opts.backbone,
        "backbone_title": backbones.spec(opts.backbone).title, "init": opts.init,
        "init_info": init_info, "mode": opts.mode, "head": opts.resolved_head,
        "dataset": dataset.name, "dataset_key": dataset.store_key, "label": dataset.label,
        "target": dataset.spec.score_meaning, "evaluation": dataset.evaluation,
        "options": opts.describe(),
        "test": repeat_summary(test_runs) if test_runs else None,
        "cross": {c.name: {"dataset_key": c.store_key, "label": c.label,
                           "target": c.spec.score_meaning, "evaluation": c.evaluation,
                           **repeat_summary([r["cross"][c.name] for r in per_repeat])}
                  for c in cross},
        "per_repeat": per_repeat, "features": features,
        "sign": SIGN_NOTE, "plcc_note": PLCC_NOTE,
        "std_note": "std over repeats is the sample standard deviation (ddof=1)",
    }


def _summary_parts(result: dict) -> list[tuple[str, dict, str]]:
    """(row label, summary over repeats, evaluation) of the test part and each cross dataset."""
    parts = []
    if result.get("test"):
        parts.append((f"{result['dataset']} (held-out contents)", result["test"],
                      result["evaluation"]))
    for name, summ in (result.get("cross") or {}).items():
        parts.append((f"{name} (cross-database)", summ, summ.get("evaluation")))
    return parts


def has_plcc(result: dict) -> bool:
    """True when some part of the result is evaluated pooled, where PLCC is defined."""
    return any(ev != "within" for _, _, ev in _summary_parts(result))


def summary_table(result: dict) -> tuple[list[str], list[list]]:
    """(headers, rows): mean/std/median over repeats of SRCC and KRCC, and of PLCC only when some
    part is evaluated pooled (PLCC is not defined within strata; such rows say n/a)."""
    stats = ["srcc", "krcc"] + (["plcc"] if has_plcc(result) else [])
    headers = ["test set", "evaluation", "repeats"] + [
        f"{k.upper()} {what}" for k in stats for what in ("mean", "std", "median")]
    rows = []
    for name, summ, evaluation in _summary_parts(result):
        row = [name, evaluation, (summ.get("srcc") or {}).get("n")]
        for k in stats:
            if k == "plcc" and evaluation == "within":
                row += ["n/a"] * 3
            else:
                st = summ.get(k) or {}
                row += [st.get("mean"), st.get("std"), st.get("median")]
        rows.append(row)
    return headers, rows


__all__ = ["TransferOptions", "run_transfer", "result_key", "summary_table", "has_plcc",
           "MODES", "STAGE", "SIGN_NOTE"]
