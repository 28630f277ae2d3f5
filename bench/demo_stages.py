"""The built-in example's stages, old code against new, in one run (issue 23, target 1).

Runs ``optiqa study configs/study/quick.yaml`` (``make demo``'s study) into fresh folders with
the code of ``--old`` (a git ref, extracted with ``git archive``) and with this working tree,
alternating old and new ``--rounds`` times, so that a change in machine load hits both sides.
Prints every stage's seconds from the study's own stage log (``logs/study-*.json``), the ratio
old/new per stage and for all stages, the CPU time of all the study's processes (how many
cores were busy), the load average around each run, and then compares the
results: every ``report/tables/*.csv`` and every model's evaluator scores
(``evaluate/<name>.json``), cell by cell (identical, or the largest difference).

    python bench/demo_stages.py --old 34df4a4                 # the whole example (~25 min)
    python bench/demo_stages.py --old 34df4a4 --set 'fidelity.metrics=[l1,dists_effnet_lite0]' \\
        --set 'adversarial.weights=[0.03]' --set train.pretrain.total_iter=100
    python bench/demo_stages.py --old 34df4a4 --old-env OMP_NUM_THREADS=1 ...
        # the old code on one torch thread: what the new code's cells compute

The old side runs with the environment as it is, minus ``OMP_WAIT_POLICY`` (which the new
``optiqa`` command sets itself), plus ``--old-env``. Outputs go under ``--out`` (default a
temporary folder, removed at the end unless ``--keep``).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def extract_ref(ref: str, dest: Path) -> Path:
    """The ``src`` and ``configs`` of git ``ref`` under ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "src", "configs"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def run_study(root: Path, out: Path, overrides: list[str], env: dict) -> dict:
    """Run the study with the code under ``root``; ``{stage: seconds}`` plus load and wall."""
    import resource

    env = {**env, "PYTHONPATH": str(root / "src"), "HF_HUB_OFFLINE": "1"}
    load0 = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "optiqa", "study",
                           str(root / "configs/study/quick.yaml"), "--out", str(out), "-q",
                           *overrides], cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode:
        sys.exit(f"study with {root} failed:\n{proc.stderr[-3000:]}")
    log = sorted((out / "logs").glob("study-*.json"))[-1]
    stages = {k: v["seconds"] for k, v in json.loads(log.read_text())["stages"].items()}
    return {"stages": stages, "wall": wall, "cpu": cpu, "load": (load0, os.getloadavg()[0])}


def _cells(path: Path) -> list[list[str]]:
    with open(path) as f:
        return list(csv.reader(f))


def _max_diff(a, b) -> float | None:
    """Largest absolute difference of two equal-shaped tables' numeric cells; None when a
    non-numeric cell or the shape differs."""
    if len(a) != len(b):
        return None
    worst = 0.0
    for ra, rb in zip(a, b):
        if len(ra) != len(rb):
            return None
        for x, y in zip(ra, rb):
            if x == y:
                continue
            try:
                worst = max(worst, abs(float(x) - float(y)))
            except ValueError:
                return None
    return worst


def compare(old: Path, new: Path) -> None:
    """Print which report tables and evaluator scores differ between two study folders."""
    tables = sorted(p.name for p in (old / "report" / "tables").glob("*.csv"))
    same = [t for t in tables if (new / "report/tables" / t).is_file()
            and _cells(old / "report/tables" / t) == _cells(new / "report/tables" / t)]
    print(f"report tables identical: {len(same)} of {len(tables)}")
    for t in tables:
        if t in same:
            continue
        p = new / "report/tables" / t
        d = _max_diff(_cells(old / "report/tables" / t), _cells(p)) if p.is_file() else None
        print(f"  {t}: " + ("missing in new" if not p.is_file() else
                            "differs (not cell by cell comparable)" if d is None else
                            f"largest difference {d:.3g}"))
    n_same = n_all = n_left = 0
    for path in sorted((old / "evaluate").glob("*.json")):
        a = json.loads(path.read_text())
        b = json.loads((new / "evaluate" / path.name).read_text())
        for s, res in a["sets"].items():
            for metric, values in res["scores"].items():
                other = b["sets"][s]["scores"].get(metric)
                if other is None and metric in b.get("left_out", {}):
                    n_left += len(values)   # a circular judgment the new code does not compute
                    continue
                n_all += len(values)
                n_same += sum(x == y for x, y in zip(values, other or []))
    print(f"evaluator scores identical: {n_same} of {n_all}"
          + (f" ({n_left} circular ones not computed by the new code)" if n_left else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="git ref of the old code, e.g. 34df4a4, or a "
                    "folder holding its src/ and configs/")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="key.path=value",
                    help="config override for both sides (repeatable)")
    ap.add_argument("--old-env", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--out", default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    out = Path(args.out or tempfile.mkdtemp(prefix="demo_stages-"))
    old_root = (Path(args.old).resolve() if Path(args.old).is_dir()
                else extract_ref(args.old, out / "old-code"))
    old_env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    old_env.update(dict(e.split("=", 1) for e in args.old_env))
    sides = {"old": (old_root, old_env), "new": (REPO, dict(os.environ))}
    runs = {"old": [], "new": []}
    try:
        for r in range(args.rounds):
            for label, (root, env) in sides.items():
                res = run_study(root, out / f"{label}-{r}", args.set, env)
                runs[label].append(res)
                print(f"round {r} {label}: {sum(res['stages'].values()):.0f} s of stages "
                      f"({', '.join(f'{k} {v:.0f}' for k, v in res['stages'].items())}); "
                      f"{res['cpu']:.0f} s of CPU over {res['wall']:.0f} s wall (all processes: "
                      f"{res['cpu'] / res['wall']:.2f} cores busy); "
                      f"load average {res['load'][0]:.1f} -> {res['load'][1]:.1f}", flush=True)
        # the new code's "pool" holds most of train/evaluate/transfer/recovery (they then find
        # their work done): compare "all", or the stages' sums, not stage by stage
        stages = list(dict.fromkeys([*runs["old"][0]["stages"], *runs["new"][0]["stages"]]))
        print("\n| stage | old s | new s | old/new |\n|---|---|---|---|")
        for st in stages + ["all"]:
            o = [sum(x["stages"].values()) if st == "all" else x["stages"].get(st, 0)
                 for x in runs["old"]]
            n = [sum(x["stages"].values()) if st == "all" else x["stages"].get(st, 0)
                 for x in runs["new"]]
            mo, mn = sum(o) / len(o), sum(n) / len(n)
            print(f"| {st} | {mo:.0f} | {mn:.0f} | {mo / mn if mn else float('nan'):.2f}x |")
        print()
        compare(out / "old-0", out / "new-0")
    finally:
        if not args.keep and args.out is None:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
