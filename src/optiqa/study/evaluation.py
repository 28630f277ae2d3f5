"""The evaluate stage: every trained model restores the held-out test images; the evaluator panel
scores them.

For each task the test sets (``data.test``) give ground truth; the inputs come from the set's own
LR files for bicubic SR, or from the task's degradation, seeded per image (the same inputs for
every model). Outputs are clamped, rounded to 8 bits (what a saved PNG holds), saved under
``images/runs/<cell>/<task>/<set>/`` and scored with a border of ``scale`` pixels removed, by
the evaluators that may judge the model: full-reference ones against the ground truth,
no-reference ones on the output alone. A judgment that the circularity rule hides from every
output (:mod:`optiqa.study.judges`: a model is never judged by its own loss, its family or an
evaluator sharing a feature extractor with its loss or discriminator) is not computed: the file
lists it under ``left_out`` with the rule's reason, and holds no number for it.

Baselines are evaluated the same way, by every evaluator: bicubic upsampling of the input (SR
tasks) or the degraded input itself (scale-1 tasks: denoising, deblurring, JPEG) and, when the
study has one, the shared pre-trained generator. ``evaluate/<name>.json`` is written atomically
after the images. Its ``key`` hashes each scored evaluator's own key (:func:`score_keys`: the
model's checkpoint, the task, the evaluator's code and weights, the protocol for
``psnr_y``/``ssim_y``, the tiling, the test data and the code that scores) and the left-out
judgments with their reasons: a file under another key is redone, and only the evaluators whose
own key it does not hold are scored again (a changed ``exclude_family``, panel or rule costs
the newly needed judgments, not the whole model).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import time
from pathlib import Path

import torch

from optiqa.core.errors import ConfigError
from optiqa.core.hashing import file_sha256, files_sha256, stable_hash
from optiqa.core.sources import code_fingerprint
from optiqa.study import names
from optiqa.study.folder import StudyFolder, read_json, write_json
from optiqa.study.locks import POLL_SECONDS, poll_until_done, run_locked
# what is evaluated beside the cells, and the images manifest
from optiqa.study.baselines import (baseline_models, baseline_names,
                                    degraded_identity, write_manifest)

log = logging.getLogger("optiqa.study")


def test_datasets(cfg, task: str) -> dict:
    """``{set name: SRTestDataset}`` of ``task`` (HR from ``data.test``; inputs per the task)."""
    from optiqa.data.task_datasets import SRTestDataset

    t = cfg.task_opts[task]
    return {name: SRTestDataset(path, scale=t.scale, degradation=t.degradation, seed=cfg.seed)
            for name, path in cfg.data.test.items()}


def data_identity(cfg) -> dict:
    """What identifies the test data: the HR files' hashes (built-in sets: the code and the
    scikit-image version that make them)."""
    import skimage

    out = {}
    for name, path in cfg.data.test.items():
        if str(path).startswith("builtin:"):
            out[name] = {"builtin": path, "skimage": skimage.__version__}
        else:
            from optiqa.data.io import list_images

            root = Path(path) / "HR" if (Path(path) / "HR").is_dir() else Path(path)
            files = list_images(root, recursive=True)
            out[name] = {"path": str(path), "files": files_sha256(files)}
    return out


def score_keys(cfg, task: str, model_sha: str, data: dict, metrics) -> dict[str, str]:
    """``{evaluator: key}``: the hash of everything that decides one evaluator's scores of one
    model: the model's checkpoint, the task, the evaluator (name, code, weights:
    :func:`metric_identity`), the protocol (``psnr_y``/``ssim_y`` only: no other evaluator reads
    it), the tiling, the test data and the code that scores. An evaluation file keeps them, so
    that a later configuration reuses every score whose key it still has."""
    from optiqa.restore.protocol import PROTOCOL_METRICS

    common = {"model": model_sha, "task": cfg.tasks[task], "tile": cfg.evaluators.tile,
              "data": data, "code": code_fingerprint(evaluate_model)}
    return {m: stable_hash({**common, "evaluator": m, "identity": metric_identity(m),
                            "protocol": cfg.evaluators.protocol if m in PROTOCOL_METRICS
                            else None})
            for m in dict.fromkeys(metrics)}


def judged_keys(cfg, task: str, model_sha: str, data: dict, cell=None
                ) -> tuple[dict[str, str], dict[str, str]]:
    """``({evaluator: key}, {evaluator: reason})`` for the model ``model_sha`` (the study cell
    ``cell``, or None for a baseline): the :func:`score_keys` of the evaluators that judge it,
    in the panel's order, and the judgments it does not compute, those the circularity rule
    hides from every output (:func:`optiqa.study.judges.excluded_evaluators`; a baseline:
    none)."""
    from optiqa.study.judges import excluded_evaluators

    skip = excluded_evaluators(cfg, cell)
    judges = [m for m in cfg.evaluators.metrics if m not in skip]
    return score_keys(cfg, task, model_sha, data, judges), skip


def evaluation_key(cfg, task: str, model_sha: str, data: dict, cell=None) -> str:
    """The key of a complete ``evaluate/<name>.json``: its :func:`judged_keys`, scored and
    left out."""
    return _file_key(*judged_keys(cfg, task, model_sha, data, cell))


def _file_key(keys: dict[str, str], skip: dict[str, str]) -> str:
    return stable_hash({"scores": keys, "left_out": skip})


def evaluator_identity(names: tuple[str, ...]) -> dict[str, str]:
    """``{name: fingerprint}`` of the evaluators: a changed metric or weight file redoes the
    evaluations."""
    return {n: metric_identity(n) for n in names}


@functools.lru_cache(maxsize=None)
def metric_identity(name: str) -> str:
    """:func:`optiqa.assess.benchmark.metric_fingerprint` of the metric ``name`` (code, options,
    weight files), from the process's CPU module of it (:func:`_cpu_metric`, which the CPU
    panel then scores with). Building it is also what finds a missing weight file, so the
    study's checks call this before any work."""
    from optiqa.assess.benchmark import metric_fingerprint

    return metric_fingerprint(name, _cpu_metric(name))


# One CPU module per evaluator in this process, shared by the fingerprint (every evaluation's
# key) and the CPU panel (:func:`_scorers`): each was built twice per process before, about
# 0.9 s of CPU for the example's 12 evaluators. Built with inference mode off, so its weights
# are ordinary tensors wherever it is first needed (the panel scores under inference mode, with
# the same kernels on the same values).
_CPU_METRICS: dict = {}


def _cpu_metric(name: str):
    if name not in _CPU_METRICS:
        from optiqa.metrics import create_metric

        with torch.inference_mode(False):
            _CPU_METRICS[name] = create_metric(name)
    return _CPU_METRICS[name]


@torch.inference_mode()
def evaluate_model(model, scale: int, datasets: dict, metrics: list[str], out_dir: Path | None,
                   device="cpu", tile: int | None = None, progress: bool = False,
                   protocol: str = "matlab", references=None) -> dict:
    """Per-image scores ``{set: {'images': [...], 'scores': {metric: [...]}, ...}}`` of one
    model, restored and scored by ``optiqa evaluate``'s own loop
    (:func:`optiqa.restore.scoring.restore_and_score`:
    ``psnr_y``/``ssim_y`` under ``protocol``, greyscale ground truth compared as grey under
    ``matlab``, NR metrics on the output alone). ``references``: where the full-reference
    evaluators keep their share of each ground truth between models (default: the process's
    :func:`_references`; ``False``: nothing kept, every score computed from the pair)."""
    from optiqa.restore.scoring import SetResult, restore_and_score

    names = list(dict.fromkeys(metrics))
    # no evaluator (every one left out): the outputs are still restored and saved for the
    # report's crops and the judging app
    scorers, kinds = _scorers(tuple(names), str(device)) if names else ({}, {})
    if references is None:
        references = _references(str(device))
    out = {}
    for name, ds in datasets.items():
        res = SetResult(name, "", ds.lq_source, scores={m: [] for m in names})
        restore_and_score(model, scale, ds, res, scorers, kinds, protocol, device, tile, 32,
                          out_dir, progress, references or None)
        out[name] = {"images": res.keys, "scores": res.scores, "lq_source": ds.lq_source,
                     "greyscale": res.greyscale}
    return out


# Off the CPU: one module per evaluator and device in this process, as _CPU_METRICS on the CPU.
_DEVICE_METRICS: dict = {}


def _metric_on(name: str, device: str):
    if torch.device(device).type == "cpu":
        return _cpu_metric(name)
    if (name, device) not in _DEVICE_METRICS:
        from optiqa.metrics import create_metric

        _DEVICE_METRICS[(name, device)] = create_metric(name, device=device)
    return _DEVICE_METRICS[(name, device)]


@functools.lru_cache(maxsize=8)
def _scorers(names: tuple[str, ...], device: str):
    """The evaluators ``names`` of the panel, from modules built once per process and device
    (:func:`_metric_on`): the metrics are frozen modules in eval mode (no state changes when
    they score), so every model a process evaluates shares them instead of rebuilding (and
    re-reading the weights of) every evaluator per model, whichever of them judge it."""
    from optiqa.restore.protocol import PROTOCOL_METRICS
    from optiqa.restore.scoring import create_scorers

    built = {n: _metric_on(n, device) for n in names if n not in PROTOCOL_METRICS}
    return create_scorers(list(names), device, have_reference=True, built=built)


@functools.lru_cache(maxsize=2)
def _references(device: str):
    """The prepared ground truths of the panel on ``device``: every model of a study is scored
    against the same test images, so each full-reference evaluator's share of a ground truth
    (DISTS: its backbone features) is done once per process, not once per model, whichever
    evaluators judge the model (entries are kept by evaluator and image:
    :class:`optiqa.assess.refcache.ReferenceCache`; at most 1 GiB kept)."""
    from optiqa.assess.refcache import ReferenceCache

    return ReferenceCache()


def write_references(folder: StudyFolder, cfg, task: str) -> None:
    """Ground truth and inputs of ``task``'s test images, once (for the report and judging)."""
    from optiqa.data.io import write_image

    for name, ds in test_datasets(cfg, task).items():
        for i in range(len(ds)):
            item = ds[i]
            for kind, img in (("reference", item["gt"]), ("input", item["lq"])):
                path = folder.test_image(kind, task, name, item["key"])
                if not path.is_file():
                    write_image(path, img.clamp(0, 1))


def evaluate_entry(folder: StudyFolder, cfg, name: str, task: str, model_id: str,
                   load, device="cpu", progress: bool = False, data: dict | None = None,
                   cell=None) -> dict:
    """Evaluate one model (``load()`` builds it) unless its result is current; returns it.
    ``model_id``: the checkpoint's SHA-256, or :func:`degraded_identity` for a baseline;
    ``cell``: the study cell (its circular judgments are left out, :func:`judged_keys`), None
    for a baseline. Scores of an earlier file whose evaluator key (:func:`score_keys`) is unchanged
    are kept; only the others are computed."""
    from optiqa.restore.scoring import border_words, scale_words

    data = data if data is not None else data_identity(cfg)
    keys, skip = judged_keys(cfg, task, model_id, data, cell)
    key = _file_key(keys, skip)      # what evaluation_key gives
    previous = read_json(folder.evaluation(name))
    if isinstance(previous, dict) and previous.get("key") == key:
        return previous
    t0 = time.time()
    kept = _reusable(previous, keys)
    todo = [m for m in keys if m not in kept]
    loaded = load()
    if kept and not todo and _images_present(folder, name, task, previous):
        # nothing to score and the outputs on disk: the earlier file's sets, fewer scores
        per_set = {s: {**st, "scores": {}} for s, st in previous["sets"].items()}
    else:
        per_set = _score(cfg, task, loaded, todo, folder.run_images(name, task), device,
                         progress)
        if kept and any(st["images"] != previous["sets"].get(s, {}).get("images")
                        for s, st in per_set.items()):
            kept, todo = set(), list(keys)   # other images than the earlier file's: score all
            per_set = _score(cfg, task, loaded, todo, folder.run_images(name, task), device,
                             progress)
    for s, st in per_set.items():       # the panel's order, whichever were computed now
        st["scores"] = {m: (previous["sets"][s]["scores"][m] if m in kept else st["scores"][m])
                        for m in keys}
    if kept:
        log.info("%s: %d evaluator(s) kept from its earlier evaluation, %d scored", name,
                 len(kept), len(todo))
    result = {"name": name, "key": key, "task": task, "model": loaded.describe(),
              "scale": loaded.scale, "evaluators": list(keys), "left_out": skip,
              "score_keys": keys, "sets": per_set,
              "convention": (f"{scale_words(loaded.scale)}; output clamped and rounded to 8 "
                             f"bits; border crop {loaded.scale} px before every evaluator "
                             f"({border_words(loaded.scale)}); psnr_y/ssim_y on "
                             f"BT.601 Y, {cfg.evaluators.protocol} protocol; NR evaluators on "
                             "the output alone; judgments the circularity rule excludes are "
                             "not computed (left_out, with the rule's reason)"),
              "seconds": round(time.time() - t0, 1)}
    write_json(folder.evaluation(name), result)  # after the images: complete from here on
    return result


def _reusable(previous, keys: dict[str, str]) -> set[str]:
    """The evaluators of ``keys`` whose scores the earlier file ``previous`` holds under the
    same evaluator key, for every one of its sets (a damaged or older file: none)."""
    if not isinstance(previous, dict):
        return set()
    held, sets = previous.get("score_keys"), previous.get("sets")
    if not isinstance(held, dict) or not isinstance(sets, dict) or not sets:
        return set()
    return {m for m, k in keys.items() if held.get(m) == k and all(
        isinstance(st, dict) and m in (st.get("scores") or {}) for st in sets.values())}


def _images_present(folder: StudyFolder, name: str, task: str, previous: dict) -> bool:
    """Whether every output image the earlier evaluation of ``name`` wrote is still on disk."""
    return all(folder.run_image(name, task, s, k).is_file()
               for s, st in previous["sets"].items() for k in st.get("images", []))


def _score(cfg, task: str, loaded, metrics: list[str], out_dir: Path, device, progress) -> dict:
    """:func:`evaluate_model` of a loaded generator on ``task``'s test sets, as the study
    configures it (tiling, protocol)."""
    return evaluate_model(loaded.model.to(device), loaded.scale, test_datasets(cfg, task),
                          metrics, out_dir, device, cfg.evaluators.tile, progress,
                          cfg.evaluators.protocol)


def evaluate_cell_locked(folder: StudyFolder, cfg, cell, device="cpu", progress=False,
                         data: dict | None = None) -> str:
    """Evaluate a trained cell under its lock: 'done', 'evaluated', 'busy' or 'untrained'."""
    from optiqa.restore.generator import load_generator

    marker = read_json(folder.run_marker(cell.name))
    if marker is None:
        return "untrained"

    def work():  # evaluate_entry itself reuses an evaluation whose key is current
        before = read_json(folder.evaluation(cell.name))
        result = evaluate_entry(
            folder, cfg, cell.name, cell.task, marker["checkpoint_sha256"],
            lambda: load_generator(folder.run(cell.name).root / marker["checkpoint"],
                                   device=device), device, progress, data, cell)
        return "done" if before is not None and before.get("key") == result["key"] \
            else "evaluated"
    return run_locked(folder.lock("evaluate", cell.name), lambda: False, work)


def evaluate_baselines(folder: StudyFolder, cfg, device="cpu", progress=False,
                       data: dict | None = None) -> list[str]:
    """Evaluate the baselines (:func:`optiqa.study.baselines.baseline_models`), each by every
    evaluator; their names."""
    models = baseline_models(folder, cfg, device)
    for name, task, model_id, load in models:
        evaluate_entry(folder, cfg, name, task, model_id, load, device, progress, data)
    return [name for name, *_ in models]


def current_evaluations(plan) -> dict:
    """``{name: result}`` of the baselines and cells whose evaluation matches the current model,
    panel and test data (stale results of an earlier configuration are left out)."""
    cfg, folder = plan.cfg, plan.folder
    data = data_identity(cfg)
    out = {}
    models = [*baseline_names(cfg, folder), *((c.name, c.task) for c in plan.cells)]
    from optiqa.study.cells import shared_starts

    starts = shared_starts(cfg, plan.cells)
    cells = {c.name: c for c in plan.cells}
    for name, task in models:
        if names.is_degraded(name):
            sha = degraded_identity(cfg.task_opts[task].scale)
        elif name in starts:
            sha = file_sha256(starts[name]) if Path(starts[name]).is_file() else None
            if sha is None:
                continue
        else:
            marker = read_json(folder.run_marker(name))
            if marker is None:
                continue
            sha = marker["checkpoint_sha256"]
        result = folder.evaluation_complete(name, evaluation_key(cfg, task, sha, data,
                                                                 cells.get(name)))
        if result is not None:
            out[name] = result
    return out


@contextlib.contextmanager
def _cpu_share(ctx, data):
    """On the CPU, the models are scored on one torch thread each in this process and in one
    worker per further core (:mod:`optiqa.study.workers`); elsewhere nothing changes."""
    from optiqa.study.workers import cpu_workers, one_thread, worker_count

    if ctx.device != "cpu":
        yield
        return
    plan = ctx.plan
    pending = [c for c in ctx.cells if plan.folder.evaluation_complete(
        c.name, evaluation_key(plan.cfg, c.task, read_json(plan.folder.run_marker(c.name))
                               ["checkpoint_sha256"], data, c)) is None]
    extra = worker_count(ctx.opts.cpu_workers, len(pending)) - 1 if pending else 0
    with one_thread(), cpu_workers(plan.folder.root, "evaluate", ctx.opts.cells, extra):
        yield


def run_stage(ctx) -> dict:
    """The evaluate stage as the runner calls it: the references and inputs, the baselines (not
    in a GPU worker), every selected cell under its lock (waiting for cells another process
    holds), then ``images/manifest.json``; ``{run: status}``."""
    plan, cells, opts, device = ctx.plan, ctx.cells, ctx.opts, ctx.device
    cfg, folder = plan.cfg, plan.folder
    missing = [c.name for c in cells if read_json(folder.run_marker(c.name)) is None]
    if missing:
        raise ConfigError(f"{len(missing)} cell(s) are not trained yet (e.g. {missing[0]}); run "
                          "the train stage first")
    data = data_identity(cfg)
    for task in cfg.tasks:
        write_references(folder, cfg, task)
    if opts.worker:  # its share of the cells; the runner writes the manifest
        poll_until_done(cells, lambda c: evaluate_cell_locked(folder, cfg, c, device,
                                                               opts.progress, data),
                        POLL_SECONDS)
        return {}
    with _cpu_share(ctx, data):  # CPU: one thread here, one worker per further core
        status = {name: "done" for name in evaluate_baselines(folder, cfg, device,
                                                                opts.progress, data)}
        status.update(poll_until_done(
            cells, lambda c: evaluate_cell_locked(folder, cfg, c, device, opts.progress, data),
            POLL_SECONDS))
    labels = {name: name for name in status}
    labels.update({c.name: c.describe() for c in plan.cells})
    write_manifest(folder, cfg, labels)
    return status
