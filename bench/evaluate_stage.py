"""The study's evaluate stage, old loop against new, in the same run (issue 23, target 1).

The stage scores every model of a study (the built-in example: 27) on the same held-out test
images with the whole evaluator panel. The old loop computed every full-reference evaluator on
each (output, ground truth) pair from scratch; the new one keeps each evaluator's share of a
ground truth (DISTS: the backbone's features of it; FSIM: its phase congruency; SSIM: its
windowed moments) across models (:class:`optiqa.assess.refcache.ReferenceCache`). Both run
here on the quick config's test set and panel, on ``--models`` generators (the bicubic baseline
and seeded random SRResNets of the quick config's architecture; the cost of scoring does not
depend on the weights), alternating old and new ``--repeats`` times; each new round starts
with an empty cache, so its first model pays for the preparation as the stage's first model
does. Prints seconds per round (process CPU time and wall), the ratio old/new, and how far the
scores differ (float rounding: the reference's features computed in their own batch).

    python bench/evaluate_stage.py --models 6 --repeats 2 --threads 1
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "configs/study/quick.yaml"))
    ap.add_argument("--models", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from optiqa.assess.refcache import ReferenceCache
    from optiqa.nets import create_generator
    from optiqa.study.cells import base_train_config
    from optiqa.study.config import load_study_config
    from optiqa.study.evaluation import evaluate_model, test_datasets
    from optiqa.restore.generator import load_generator

    cfg = load_study_config(args.config)
    task = next(iter(cfg.tasks))
    scale = cfg.task_opts[task].scale
    metrics = list(cfg.evaluators.metrics)
    datasets = test_datasets(cfg, task)
    arch = dict(base_train_config(cfg, task)["network_g"])
    models = [load_generator("bicubic", scale=scale).model]
    for seed in range(1, args.models):
        torch.manual_seed(seed)
        models.append(create_generator(**arch).eval())
    n_images = sum(len(ds) for ds in datasets.values())
    print(f"{len(models)} models x {n_images} images x {len(metrics)} evaluators "
          f"({', '.join(metrics)}); torch threads {torch.get_num_threads()}")
    evaluate_model(models[0], scale, datasets, metrics, None, references=False)  # warm-up

    def stage(references) -> tuple[float, float, list]:
        c0, w0 = time.process_time(), time.perf_counter()
        out = [evaluate_model(m, scale, datasets, metrics, None, references=references)
               for m in models]
        return time.process_time() - c0, time.perf_counter() - w0, out

    times = {"old": [], "new": []}
    results = {}
    for _ in range(args.repeats):
        for label in ("old", "new"):
            cpu, wall, out = stage(False if label == "old" else ReferenceCache())
            times[label].append((cpu, wall))
            results[label] = out
            print(f"{label}: {cpu:.1f} s CPU, {wall:.1f} s wall")
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    print(f"ratio old/new: {med['old'][0] / med['new'][0]:.2f}x CPU, "
          f"{med['old'][1] / med['new'][1]:.2f}x wall (median rounds)")
    worst, changed4 = {}, 0
    for old, new in zip(results["old"], results["new"]):
        for s in old:
            for m in metrics:
                a, b = old[s]["scores"][m], new[s]["scores"][m]
                worst[m] = max(worst.get(m, 0.0), max(abs(x - y) for x, y in zip(a, b)))
                changed4 += sum(f"{x:.4f}" != f"{y:.4f}" for x, y in zip(a, b))
    print("largest |old - new| per evaluator: "
          + ", ".join(f"{m} {v:.1e}" for m, v in worst.items()))
    print(f"scores whose 4-decimal rounding differs: {changed4} of "
          f"{len(models) * n_images * len(metrics)}")


if __name__ == "__main__":
    main()
