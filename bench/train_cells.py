"""CPU time of one training step of the built-in example's cells, old code against new, in one run.

Issue 23, target 1 (the train stage). Every cell of ``configs/study/quick.yaml`` runs on ONE torch
thread in the study (``optiqa.study.workers``), so what its train stage costs is the CPU time of
these steps. For each cell type (fidelity loss x no / patch / image discriminator; the two
adversarial weights cost the same), a worker process builds the cell's trainer exactly as the
study does (``optiqa.study.cells.expand_cells``; the generator from its random init instead of the
pre-training, which changes no cost), runs ``--warmup`` untimed steps (the first adversarial step
measures the gradient ratio once), then ``--steps`` timed steps on the same fixed batches, and
prints the CPU seconds of each step (``time.process_time``) and a SHA-256 of the final weights
(G, its EMA, D with its spectral-norm vectors). The old side is git ref ``--old`` (extracted with
``git archive``), the new side this working tree; the two alternate ``--rounds`` times per cell
type, so that a change in machine load hits both. Equal digests mean the new code trained the
cell to bit-identical weights over those steps.

    python bench/train_cells.py --old d929807                  # all cell types (~10 min)
    python bench/train_cells.py --old d929807 --cells 'sr_x4__l1__*w0.03' --rounds 1

``--try key=value`` (training-config overrides, e.g. ``train.bf16=true``) adds a third side: the
new code with those settings, to measure a change that moves the rounding (and so is off by
default); its weights are expected to differ, and the table says whether they do.

    python bench/train_cells.py --old d929807 --try train.bf16=true

The summary line weighs each type by its number of cells in the example (two adversarial weights
per discriminator) and by ``train.total_iter``: the CPU seconds of the train stage's steps,
old and new (the pre-training, process start-up and checkpoint writes are not in it).
"""
from __future__ import annotations

import argparse
import copy
import fnmatch
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "study" / "quick.yaml"


# ------------------------------------------------------------------------------ the worker
def digest(tensors: dict) -> str:
    """SHA-256 over names and exact values (bytes) of a flat dict of tensors."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def worker(cell: str, config: str, steps: int, warmup: int, overrides: list[str],
           train_overrides: list[str]) -> dict:
    """Build ``cell``'s trainer as the study does (plus ``train_overrides`` on its training
    config), train it, and time its steps (one thread)."""
    import torch

    torch.set_num_threads(1)
    from optiqa.core.config import apply_overrides
    from optiqa.study.cells import expand_cells
    from optiqa.study.config import load_study_config
    from optiqa.train.config import load_train_config
    from optiqa.train.trainer import Trainer

    cells = {c.name: c for c in expand_cells(load_study_config(config, overrides))}
    raw = copy.deepcopy(cells[cell].train_config)
    raw["path"] = dict(raw.get("path") or {}, pretrain_network_g=None)
    raw = apply_overrides(raw, train_overrides)
    cfg = load_train_config(raw)
    t0 = time.process_time()
    trainer = Trainer(cfg, "cpu", progress=False)
    build = time.process_time() - t0
    size = cfg.datasets.train.batch_size
    batches = [trainer.train_set.batch(i, size) for i in range(warmup + steps)]
    times = []
    for i, batch in enumerate(batches, start=1):
        t0 = time.process_time()
        trainer.train_step(i, batch)
        if i > warmup:
            times.append(time.process_time() - t0)
    state = {f"g.{k}": v for k, v in trainer.net_g.state_dict().items()}
    if trainer.ema is not None:
        state.update({f"ema.{k}": v for k, v in trainer.ema.state_dict().items()})
    if trainer.net_d is not None:
        state.update({f"d.{k}": v for k, v in trainer.net_d.state_dict().items()})
    return {"cell": cell, "seconds": times, "build_seconds": build, "digest": digest(state),
            "threads": torch.get_num_threads(), "total_iter": cfg.train.total_iter}


# ------------------------------------------------------------------------------ the runner
def extract_ref(ref: str, dest: Path) -> Path:
    """The ``src`` of git ``ref`` under ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "src"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def run_side(src: Path, cell: str, args, train_overrides=()) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", cell, "--config",
           str(args.config), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    for s in args.set:
        cmd += ["--set", s]
    for s in train_overrides:
        cmd += ["--train-set", s]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"worker for {cell} with {src} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cell_types(config: str, overrides: list[str], pattern: str | None) -> list[tuple[str, int]]:
    """One cell per (fidelity, discriminator) with its count of cells, in the study's order."""
    from optiqa.study.cells import expand_cells
    from optiqa.study.config import load_study_config

    kinds: dict[tuple, list[str]] = {}
    for c in expand_cells(load_study_config(config, overrides)):
        if pattern and not fnmatch.fnmatchcase(c.name, pattern):
            continue
        kinds.setdefault((c.task, c.fidelity, c.discriminator), []).append(c.name)
    return [(names[-1], len(names)) for names in kinds.values()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", default="main", help="git ref of the old code (default: main)")
    p.add_argument("--config", default=str(CONFIG), help="study config (default: quick.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="key.path=value",
                   help="study config override (repeatable)")
    p.add_argument("--cells", help="glob over cell names (default: every cell type)")
    p.add_argument("--steps", type=int, default=6, help="timed steps per worker")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (>= 1)")
    p.add_argument("--rounds", type=int, default=2, help="old/new alternations per cell type")
    p.add_argument("--try", dest="variant", action="append", default=[],
                   metavar="key.path=value", help="a third side: the new code with these "
                   "training-config overrides (repeatable), e.g. train.bf16=true")
    p.add_argument("--json", metavar="PATH", help="also write every worker's result as JSON")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--train-set", action="append", default=[], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.config, args.steps, args.warmup, args.set,
                                args.train_set)))
        return 0
    if args.warmup < 1 or args.steps < 1 or args.rounds < 1:
        p.error("--warmup, --steps and --rounds must be at least 1")

    sys.path.insert(0, str(REPO / "src"))
    kinds = cell_types(args.config, args.set, args.cells)
    if not kinds:
        p.error(f"no cell matches {args.cells!r}")
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.old], check=True,
                         capture_output=True, text=True).stdout.strip()
    print(f"old: {args.old} ({rev}); new: this tree; one torch thread; {args.warmup} warm-up + "
          f"{args.steps} timed steps per worker, {args.rounds} rounds; load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    results = []
    variant = " ".join(args.variant)
    with tempfile.TemporaryDirectory(prefix="train_cells_") as tmp:
        sides = {"old": (extract_ref(args.old, Path(tmp)) / "src", ()),
                 "new": (REPO / "src", ())}
        if args.variant:
            sides["try"] = (REPO / "src", tuple(args.variant))
            print(f"try: the new code with {variant}")
        print(f"{'cell type':<44}{'cells':>6}{'old ms':>9}{'new ms':>9}{'old/new':>9}  weights"
              + (f"{'try ms':>9}{'old/try':>9}  weights" if args.variant else ""))
        for cell, count in kinds:
            runs = {side: [] for side in sides}
            for _ in range(args.rounds):
                for side, (src, train_overrides) in sides.items():
                    runs[side].append(run_side(src, cell, args, train_overrides))
            ms = {s: 1000 * statistics.median([t for r in runs[s] for t in r["seconds"]])
                  for s in runs}
            old_digest = runs["old"][0]["digest"]
            same = {s: all(r["digest"] == old_digest for r in runs[s]) for s in runs}
            row = {"cell": cell, "cells": count, "total_iter": runs["new"][0]["total_iter"],
                   "ms": ms, "bit_identical": same, "runs": runs}
            results.append(row)
            line = (f"{cell:<44}{count:>6}{ms['old']:>9.0f}{ms['new']:>9.0f}"
                    f"{ms['old'] / ms['new']:>8.2f}x  {'identical' if same['new'] else 'DIFFER'}")
            if args.variant:
                line += (f"{ms['try']:>9.0f}{ms['old'] / ms['try']:>8.2f}x  "
                         f"{'identical' if same['try'] else 'differ'}")
            print(line, flush=True)
    totals = {s: sum(r["ms"][s] * r["cells"] * r["total_iter"] for r in results) / 1000
              for s in sides}
    print(f"train-stage steps, {sum(r['cells'] for r in results)} cells: old {totals['old']:.0f}"
          f" s CPU, new {totals['new']:.0f} s CPU, {totals['old'] / totals['new']:.2f}x"
          + (f"; try ({variant}) {totals['try']:.0f} s CPU, "
             f"{totals['old'] / totals['try']:.2f}x" if args.variant else "")
          + f"; load average {os.getloadavg()[0]:.1f}")
    differ = [r["cell"] for r in results if not r["bit_identical"]["new"]]
    print("weights, new vs old: " + ("bit-identical in every cell type" if not differ else
                                     f"DIFFER in {', '.join(differ)}"))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 1 if differ else 0

if __name__ == "__main__":
    sys.exit(main())
