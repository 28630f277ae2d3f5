"""The CPU pool of a study (optiqa.study.pool) and the order of its cells
(optiqa.study.schedule): which task is taken when, and that the pre-training does not depend on
which process ran it. That a whole study's results do not depend on how many processes share
the work, and that a study killed mid-pool resumes without redoing anything finished, is tested
in test_study_run.py (on the tiny study it runs for its other tests)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from optiqa.study.locks import CellLock
from optiqa.study.pool import POOLED_STAGES, Task, build_tasks, drain
from optiqa.study.workers import ONE_THREAD_ENV

TINY = Path(__file__).resolve().parent / "data" / "tiny_study.yaml"


# ---------------------------------------------------------------------------------------------
# drain: which task is taken
# ---------------------------------------------------------------------------------------------
def _task(tmp_path, name, log, ready=lambda: True, done=lambda: False):
    def run():
        log.append(name)
        return "ran"
    return Task("t", name, tmp_path / f"{name}.lock", run, done, ready)


def test_drain_takes_the_first_ready_task_then_starts_again_from_the_top(tmp_path):
    log, b_done = [], []
    a = _task(tmp_path, "a", log, ready=lambda: bool(b_done))      # needs b
    b = _task(tmp_path, "b", log)
    b.run = lambda: (log.append("b"), b_done.append(1), "ran")[-1]
    c = _task(tmp_path, "c", log)
    naps = []
    status = drain([a, b, c], sleep=naps.append)
    # b is the first ready task; once it is done, a (first in the list) comes before c
    assert log == ["b", "a", "c"] and naps == []
    assert status == {"t:a": "ran", "t:b": "ran", "t:c": "ran"}
    assert not list(tmp_path.glob("*.lock"))


def test_drain_leaves_a_held_task_to_its_holder_and_waits_for_it(tmp_path):
    log, finished = [], []
    held = _task(tmp_path, "held", log, done=lambda: bool(finished))
    free = _task(tmp_path, "free", log)
    other = CellLock(held.lock)   # another runner holds it (a live process: this one)
    assert other.acquire()

    def nap(seconds):  # while this process waits, the holder finishes and lets go
        finished.append(seconds)
        other.release()
    status = drain([held, free], poll=0.25, sleep=nap)
    assert log == ["free"]                      # never ran the held task itself
    assert finished == [0.25]                   # waited once, when nothing else was left
    assert status == {"t:free": "ran", "t:held": "done"}


def test_a_task_runs_on_its_own_thread_count(tmp_path):
    seen = []
    t = Task("t", "x", tmp_path / "x.lock", lambda: seen.append(torch.get_num_threads()) or "ok",
             threads=2)
    before = torch.get_num_threads()
    drain([t])
    assert seen == [2] and torch.get_num_threads() == before


# ---------------------------------------------------------------------------------------------
# the order of the tasks
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_plan(tmp_path_factory):
    from optiqa.study.config import load_study_config
    from optiqa.study.folder import StudyFolder
    from optiqa.study.plan import StudyPlan

    return StudyPlan(load_study_config(TINY), StudyFolder(tmp_path_factory.mktemp("plan")))


def test_cells_are_ordered_most_expensive_first(tiny_plan):
    from optiqa.study.schedule import cell_cost, fidelity_flops, longest_first

    assert fidelity_flops("l1", 32) == 0                 # no convolution, no product
    assert fidelity_flops("dists_vgg16_r", 32) > fidelity_flops("ssim", 32) > 0
    order = longest_first(tiny_plan.cells)
    costs = [cell_cost(c) for c in order]
    assert costs == sorted(costs, reverse=True)
    names = [c.name for c in order]
    # L1 and GMSD (filters as pooling and element-wise work) count no FLOPs: alone, they are
    # the cheapest cells, in the config's order
    assert names[-2:] == ["sr_x4__l1__none", "sr_x4__gmsd__none"] and costs[-1] == 0
    for loss in ("l1", "ssim", "gmsd", "nlpd"):         # a discriminator adds to a loss's cost
        assert names.index(f"sr_x4__{loss}__patch__w0.01") < names.index(f"sr_x4__{loss}__none")


def test_a_worker_takes_its_runners_order_for_the_same_cells_only(tiny_plan, monkeypatch):
    """order_env hands the runner's order to the pool's workers (no cost estimate there); it
    is ignored for other cells or another training configuration."""
    import copy

    from optiqa.study import schedule

    cells = tiny_plan.cells
    expected = [c.name for c in schedule.longest_first(cells)]
    env = schedule.order_env(cells)
    monkeypatch.setenv(schedule.ORDER_ENV, env[schedule.ORDER_ENV])
    computed = []
    real_cost = schedule.cell_cost
    monkeypatch.setattr(schedule, "cell_cost", lambda c: computed.append(c.name) or real_cost(c))
    assert [c.name for c in schedule.longest_first(cells)] == expected and computed == []
    # fewer cells, or a cell whose training differs: computed here
    assert [c.name for c in schedule.longest_first(cells[1:])] == [
        n for n in expected if n != cells[0].name]
    assert len(computed) == len(cells) - 1
    changed = copy.deepcopy(cells)
    ssim = next(c for c in changed if c.name == "sr_x4__ssim__none")   # now the longest
    ssim.train_config["train"]["total_iter"] = 10 ** 6
    computed.clear()
    order = schedule.longest_first(changed)
    assert len(computed) == len(cells) and order[0].name == ssim.name != expected[0]
    monkeypatch.setenv(schedule.ORDER_ENV, "not json")
    computed.clear()
    assert [c.name for c in schedule.longest_first(cells)] == expected
    assert len(computed) == len(cells)


def test_pool_lists_long_pieces_first_and_each_after_what_it_needs(tiny_plan):
    from optiqa.study.schedule import longest_first

    tasks = build_tasks(tiny_plan, tiny_plan.cells, POOLED_STAGES)
    keys = [t.key for t in tasks]
    cells = [f"train:{c.name}" for c in longest_first(tiny_plan.cells)]
    assert keys[:1 + len(cells)] == ["train:pretrain__sr_x4", *cells]
    rest = keys[1 + len(cells):]
    assert rest[:2] == ["recovery:astronaut", "transfer:nr__effnet_lite0__random"]
    assert rest[2:4] == ["evaluate:bicubic__sr_x4", "evaluate:pretrain__sr_x4"]
    zero_shot = [k for k in rest if k.startswith("transfer:zeroshot__")]
    assert len(zero_shot) == 4 and rest[-4:] == zero_shot   # they need a trained discriminator
    by_key = {t.key: t for t in tasks}
    for c in tiny_plan.cells:
        assert by_key[f"evaluate:{c.name}"].needs == (f"train:{c.name}",)
        assert by_key[f"train:{c.name}"].needs == ("train:pretrain__sr_x4",)
        assert by_key[f"train:{c.name}"].threads == 1
    assert by_key["train:pretrain__sr_x4"].needs == ()
    # nothing is trained and the train stage is not selected: what needs training is left to
    # its stage (which says so), not waited for forever
    left = [t.key for t in build_tasks(tiny_plan, tiny_plan.cells, ("evaluate", "transfer"))]
    assert left == ["transfer:nr__effnet_lite0__random", "evaluate:bicubic__sr_x4"]
    # ... and so is the runner's analysis, which needs every evaluation
    runner = SimpleNamespace(plan=tiny_plan)
    with_runner = [t.key for t in build_tasks(tiny_plan, tiny_plan.cells,
                                              ("evaluate", "analyze"), runner=runner)]
    assert with_runner == ["evaluate:bicubic__sr_x4"]
    everything = build_tasks(tiny_plan, tiny_plan.cells, (*POOLED_STAGES, "analyze"),
                             runner=runner)
    analyze = next(t for t in everything if t.stage == "analyze")
    assert analyze.runner_only and len(analyze.needs) == 10   # bicubic, pre-training, 8 cells
    assert [t.key for t in everything].index(analyze.key) == 1 + len(cells)


# ---------------------------------------------------------------------------------------------
# the pre-training in a worker (the whole-study checks of the pool, one process against two and
# a kill mid-pool, are in test_study_run.py, on the tiny study that file runs anyway)
# ---------------------------------------------------------------------------------------------
def _env(cache: Path, **extra) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OPTIQA_CACHE": str(cache), **extra}
    return {k: v for k, v in env.items() if v is not None}


def _study(out: Path, cache: Path, *args, env=None):
    cmd = [sys.executable, "-m", "optiqa", "study", str(TINY), "--out", str(out), "-q", *args]
    proc = subprocess.run(cmd, env=env or _env(cache, OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_the_pretraining_keeps_the_runners_threads_in_a_worker(tmp_path):
    """The pre-training run by a pool worker (one thread, told the runner's count) equals the
    one a 2-thread runner trains itself, and differs from a 1-thread one (so the check can
    fail)."""
    cache = tmp_path / "cache"
    only = ("--stage", "train", "--cells", "sr_x4__l1__none")
    runs = {}
    # MKL_NUM_THREADS unset, not as the suite's xdist workers set it (tests/conftest.py): torch's
    # default thread count takes MKL_NUM_THREADS over OMP_NUM_THREADS, so with MKL_NUM_THREADS=1
    # the "2-thread" runner would run on one thread (and tell its workers 1: the runner's
    # count, tests/test_worker_threads.py); the worker gets the environment optiqa gives its
    # workers, told 2 threads as a 2-thread runner tells them
    for threads in ("1", "2"):
        _study(tmp_path / threads, cache, *only, "--cpu-workers", "1",
               env=_env(cache, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=None))
        runs[threads] = tmp_path / threads
    # the study folder as a runner leaves it for its workers (its config written, nothing
    # trained): the 1-thread runner's folder without its runs, locks and logs
    worker = tmp_path / "worker"
    shutil.copytree(runs["1"], worker, ignore=shutil.ignore_patterns("runs", "locks", "logs"))
    cmd = [sys.executable, "-m", "optiqa", "study", str(worker / "study.yaml"), "--out",
           str(worker), "--worker", "--pool", "--device", "cpu", "-q", *only]
    proc = subprocess.run(cmd, env=_env(cache, **ONE_THREAD_ENV, OPTIQA_STUDY_THREADS="2"),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]

    def weights(out):
        ckpt = torch.load(out / "runs" / "pretrain__sr_x4" / "models" / "net_g_4.pth",
                          weights_only=True)["params"]
        return list(ckpt.items())

    def same(a, b):
        return [k for k, _ in a] == [k for k, _ in b] and all(
            torch.equal(x, y) for (_, x), (_, y) in zip(a, b))
    assert same(weights(worker), weights(runs["2"]))
    assert not same(weights(runs["1"]), weights(runs["2"]))
    assert (worker / "runs" / "sr_x4__l1__none" / "complete.json").is_file()
