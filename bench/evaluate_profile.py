"""Where an evaluate piece's CPU goes: seconds per evaluator per model (issue 23, target 1).

Runs the evaluate stage's own loop (:func:`optiqa.study.evaluation.evaluate_model`, the
process's panel and reference cache, images written as the stage writes them) on one torch
thread, as a CPU pool process runs its ``evaluate:<model>`` pieces, for the bicubic baseline
and ``--models - 1`` seeded random generators of the quick config's architecture (scoring costs
do not depend on the weights), or the trained generators of ``--runs`` (run folders). Every
metric call is timed (``time.process_time``); a full-reference evaluator's preparation of a
ground truth (done once per process, :class:`optiqa.assess.refcache.ReferenceCache`) is listed
on its own line. Prints the CPU seconds per line, in all and per model.

    python bench/evaluate_profile.py --models 6 --out /tmp/evalprof
"""
from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "configs/study/quick.yaml"))
    ap.add_argument("--models", type=int, default=6)
    ap.add_argument("--runs", nargs="*", default=[], help="trained run folders instead")
    ap.add_argument("--out", default=None, help="where the restored images go (default: temp)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cpu0 = time.process_time()

    from optiqa.nets import create_generator
    from optiqa.restore import scoring
    from optiqa.restore.generator import load_generator
    from optiqa.study import evaluation as ev
    from optiqa.study.cells import base_train_config
    from optiqa.study.config import load_study_config

    cfg = load_study_config(args.config)
    task = next(iter(cfg.tasks))
    scale = cfg.task_opts[task].scale
    metrics = list(cfg.evaluators.metrics)
    cost: collections.Counter = collections.Counter()

    def timed(label, fn):
        def call(*a, **k):
            t = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                cost[label] += time.process_time() - t
        return call

    t = time.process_time()
    ev.evaluation_key(cfg, task, "-", ev.data_identity(cfg))  # as a piece: its key first
    scorers, _ = ev._scorers(tuple(metrics), "cpu")
    cost["panel and key (once per process)"] += time.process_time() - t

    class Timed:  # a metric whose calls are timed; its reference preparation on its own line
        def __init__(self, name, metric):
            self.name, self.metric, self.info = name, metric, metric.info

        def __call__(self, *a):
            return timed(self.name, self.metric)(*a)

        def reference_scorer(self, ref):
            score = timed(f"{self.name} (ground truth, once)", self.metric.reference_scorer)(ref)
            return timed(self.name, score)

    for name in list(scorers):
        scorers[name] = Timed(name, scorers[name])
    scoring.protocol_scores = timed("psnr_y + ssim_y", scoring.protocol_scores)
    scoring.restore = timed("the generator", scoring.restore)
    import optiqa.data.io as io
    io.write_image = timed("PNG writing", io.write_image)

    models = []
    if args.runs:
        for run in args.runs:
            marker = json.loads((Path(run) / "complete.json").read_text())
            models.append(load_generator(Path(run) / marker["checkpoint"]).model)
    else:
        models.append(load_generator("bicubic", scale=scale).model)
        arch = dict(base_train_config(cfg, task)["network_g"])
        for seed in range(1, args.models):
            torch.manual_seed(seed)
            models.append(create_generator(**arch).eval())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        t = time.process_time()
        for i, model in enumerate(models):
            ev.evaluate_model(model, scale, ev.test_datasets(cfg, task), metrics,
                              out / f"model{i}")
        loop = time.process_time() - t
    n = len(models)
    listed = sum(v for k, v in cost.items() if not k.startswith("panel"))
    cost["the rest of the loop (data, crops, bookkeeping)"] = loop - listed
    print(f"{n} models x {sum(len(d) for d in ev.test_datasets(cfg, task).values())} images, "
          f"{len(metrics)} evaluators, 1 thread; loop {loop:.1f} s CPU ({loop / n:.2f} s per "
          f"model); process {time.process_time() - cpu0:.1f} s")
    print(f"{'':48s} {'CPU s':>8s} {'per model':>10s} {'share':>6s}")
    for label, v in cost.most_common():
        share = "" if label.startswith("panel") else f"{100 * v / loop:5.1f}%"  # outside the loop
        print(f"{label:48s} {v:8.2f} {v / n:10.3f} {share:>6s}")


if __name__ == "__main__":
    main()
