"""``optiqa study`` end to end on a tiny config: every stage, idempotence, SIGKILL and rerun,
the same numbers from one process as from the runner and a CPU worker (and after a kill in the
CPU pool), two runners at once, the SLURM launcher through submitit's local executor, and the
report in a real headless browser.

One uninterrupted study (``finished``, a runner and one CPU worker) is the reference of every
test here; the CPU pool's whole-study checks (optiqa.study.pool) live here too, so that the
suite runs the tiny study once for both. One interrupted study (``interrupted``: killed
mid-training, moved, killed mid-pool and mid-transfer, continued) serves the three tests whose
point is a kill or a move and the same numbers after it. ``optiqa report`` and ``study --dry-run`` run through
:func:`clitools.run_main` (same ``optiqa.cli.main``, in this process: no fresh interpreter
importing torch for a command whose point is not the process); a study that trains stays a
subprocess."""
from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from clitools import run_main

TINY = Path(__file__).resolve().parent / "data" / "tiny_study.yaml"


def _env(tmp_cache: Path) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OPTIQA_CACHE": str(tmp_cache),
            "OMP_NUM_THREADS": "1"}


def _study(out: Path, cache: Path, *args, check=True, timeout=900):
    cmd = [sys.executable, "-m", "optiqa", "study", str(TINY), "--out", str(out), "-q", *args]
    proc = subprocess.run(cmd, env=_env(cache), capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _numbers(out: Path) -> dict:
    """Every number the report rests on (no timings, no paths): the analysis and the tables."""
    analysis = json.loads((out / "analysis.json").read_text())
    tables = {p.name: list(csv.reader(open(p)))
              for p in sorted((out / "report" / "tables").glob("*.csv"))}
    evaluations = {p.name: json.loads(p.read_text())["sets"]
                   for p in sorted((out / "evaluate").glob("*.json"))}
    return {"analysis": analysis, "tables": tables, "evaluations": evaluations}


def _mtimes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")
            if p.is_file() and "report" not in p.parts and "logs" not in p.parts
            and "locks" not in p.parts and p.suffix not in (".db", ".db-wal", ".db-shm")
            and not p.name.startswith("results.db")}


# the runner and one CPU worker, whatever the machine's cores (the default is one per core)
TWO_PROCESSES = ("--cpu-workers", "2")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One uninterrupted run of the whole tiny study, by the runner and one CPU worker (shared
    by the tests below)."""
    root = tmp_path_factory.mktemp("study")
    out, cache = root / "a", root / "cache"
    proc = _study(out, cache, *TWO_PROCESSES)
    assert f"report: {out / 'report' / 'report.html'}" in proc.stdout
    return out, cache


@pytest.fixture
def study_cache(finished, monkeypatch):
    """``$OPTIQA_CACHE`` of the studies here, for commands run in this process."""
    monkeypatch.setenv("OPTIQA_CACHE", str(finished[1]))


def test_every_stage_writes_its_artifacts(finished):
    out, _ = finished
    for cell in ("sr_x4__l1__none", "sr_x4__ssim__patch__w0.01", "pretrain__sr_x4"):
        marker = json.loads((out / "runs" / cell / "complete.json").read_text())
        assert marker["iteration"] == 4 and len(marker["checkpoint_sha256"]) == 64
    ev = json.loads((out / "evaluate" / "sr_x4__gmsd__none.json").read_text())
    # the gmsd cell is not judged by gmsd (its own loss): not computed, the reason recorded
    assert ev["evaluators"] == ["psnr_y", "ssim_y", "mse"]
    assert ev["left_out"] == {"gmsd": "the training loss"}
    assert all("gmsd" not in st["scores"] for st in ev["sets"].values())
    assert len(ev["sets"]["photos"]["images"]) == 10  # the 10 held-out test images
    manifest = json.loads((out / "images" / "manifest.json").read_text())
    assert len(manifest["references"]) == 10 and "sr_x4__l1__none" in manifest["runs"]
    for rel in manifest["runs"]["sr_x4__l1__none"]["images"].values():
        assert (out / rel).is_file()
    assess = json.loads((out / "assess" / "synthetic.json").read_text())
    assert {r["metric"] for r in assess["results"]} == {"l1", "ssim", "gmsd", "nlpd"}
    assert assess["contents"] == ["astronaut", "chelsea", "rocket"]
    analysis = json.loads((out / "analysis.json").read_text())
    rows = [r for r in analysis["rank_agreement"] if r["scope"] == "setting"]
    assert rows and all(r["n_metrics"] <= 4 for r in rows)
    # psnr_y may not judge the l1 model (pixel family): 3 metrics, a defined correlation
    psnr = next(r for r in rows if r["evaluator"] == "psnr_y" and r["group"] == "none")
    assert psnr["n_metrics"] == 3 and psnr["left_out"]["circular"] == ["l1"]
    assert psnr["reason"] is None
    # rho recomputed from the files: each point's optimization quality is the mean PSNR-Y
    # (higher-better, so not negated) over the test images of its cells' evaluations
    from scipy.stats import spearmanr
    for p in psnr["points"]:
        means = []
        for cell in p["cells"]:
            sets = json.loads((out / "evaluate" / f"{cell}.json").read_text())["sets"]
            means.append(float(np.mean([v for st in sets.values()
                                        for v in st["scores"]["psnr_y"]])))
        assert p["optimization"] == pytest.approx(np.mean(means), rel=1e-9)
    expected = spearmanr([p["optimization"] for p in psnr["points"]],
                         [p["assessment"] for p in psnr["points"]]).statistic
    assert psnr["spearman"] == pytest.approx(expected, abs=1e-12)
    # circularity: the l1 model is never judged by a pixel metric, the ssim model not by ssim_y
    excl = {(x["cell"], x["evaluator"]) for x in analysis["exclusions"]}
    assert ("sr_x4__l1__none", "psnr_y") in excl and ("sr_x4__ssim__none", "ssim_y") in excl
    assert ("sr_x4__l1__none", "ssim_y") not in excl
    html = (out / "report" / "report.html").read_text()
    for section in ("Metrics as IQA models", "Metrics as training losses",
                    "Assessment vs optimization", "Discriminators reused for IQA",
                    "Visual comparison", "Training curves", "Held-out data",
                    "the recovery test", "Human judgments"):
        assert section in html
    assert "data:image/png;base64," in html and "<script" not in html
    # the held-out sentence is true: the built-in training split shares no photo with the test
    # split or the assessed photos, and the sentence counts what the config names
    from optiqa.data.samples import SPLITS
    assert not set(SPLITS["train"]) & (set(SPLITS["test"]) | {"astronaut", "chelsea", "rocket"})
    heldout = json.loads((out / "heldout.json").read_text())
    assert heldout["passed"] and heldout["training_images"] == len(SPLITS["train"])
    assert f"None of the {len(SPLITS['train'])} training images" in html
    assert "data.test.photos (10 images)" in html
    assert (out / "report" / "report.md").is_file()
    for table in ("optimization", "iqa_synthetic", "rank_agreement", "transfer"):
        assert (out / "report" / "tables" / f"{table}.csv").is_file()
    # results.db is a cache that its writers read back (metric scores, transfer results), not a
    # second record of the training runs: their truth is runs/<cell>/complete.json (above)
    with sqlite3.connect(out / "results.db") as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stages = {stage for (stage,) in con.execute("SELECT stage FROM runs")}
        assert con.execute("SELECT COUNT(*) FROM scores").fetchone()[0] > 0
    assert stages == {"transfer"}


def _every_number(out: Path) -> dict:
    """Every number of the study, without timings and paths: report tables, evaluator scores,
    transfer and zero-shot results, the recovery table."""
    volatile = {"seconds", "key", "checkpoint", "checkpoint_sha256", "date"}

    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if k not in volatile}
        return [clean(x) for x in v] if isinstance(v, list) else v
    recovery = list(csv.DictReader(open(out / "diagnose" / "recovery" / "recovery.csv")))
    return {
        "tables": {p.name: p.read_text() for p in (out / "report" / "tables").glob("*.csv")},
        "evaluate": {p.name: json.loads(p.read_text())["sets"]
                     for p in (out / "evaluate").glob("*.json")},
        "transfer": {p.name: clean(json.loads(p.read_text()))
                     for p in (out / "transfer").glob("*.json")},
        "recovery": [{k: v for k, v in r.items() if k != "seconds"} for r in recovery],
    }


@pytest.fixture(scope="module")
def one_process(finished, tmp_path_factory):
    """The same study run by the runner alone (``--cpu-workers 1``)."""
    out = tmp_path_factory.mktemp("pool") / "one"
    _study(out, finished[1], "--cpu-workers", "1")
    return out


def test_one_and_two_processes_give_bit_identical_results(one_process, finished):
    """(The CPU pool, optiqa.study.pool.) ``finished`` was run by the runner and one worker."""
    two = finished[0]
    a, b = _every_number(one_process), _every_number(two)
    assert len(a["tables"]) > 5 and len(a["evaluate"]) == 10 and len(a["transfer"]) == 5
    assert a == b        # transfer, zero-shot and recovery included: one thread each
    # the first study log is the fixture's own run (later tests rerun the study in place)
    log = json.loads(sorted((two / "logs").glob("study-*.json"))[0].read_text())
    assert list(log["stages"])[:2] == ["assess", "pool"]
    pool = log["stages"]["pool"]["result"]
    assert sum(pool["train"].values()) == 9          # the runner's view: trained or found done
    assert pool["analyze"] == {"analysed": 1}        # in the pool; the analyze stage reused it
    assert not list((two / "locks").glob("*.lock"))
    assert not list((two / "logs").glob("worker-*"))  # removed after success


def test_a_rerun_redoes_nothing(finished):
    out, cache = finished
    before = _mtimes(out)
    numbers = _numbers(out)
    _study(out, cache, *TWO_PROCESSES)
    assert _mtimes(out) == before  # no run, image, evaluation or result file rewritten
    assert _numbers(out) == numbers


def _kill_when(proc, condition, timeout=600.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False  # finished before the moment came
        if condition():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("the moment to kill never came")


def _kill_study(proc, condition) -> bool:
    """:func:`_kill_when`, then a second for its CPU worker, which the kernel sends SIGTERM when
    the runner dies, to stop writing."""
    killed = _kill_when(proc, condition)
    if killed:
        time.sleep(1.0)
    return killed


@pytest.fixture(scope="module")
def interrupted(finished, tmp_path_factory):
    """One study killed three times and continued, the shared run of the three tests below (a
    whole study of its own each before; each test's point is one step of this sequence):

    1. ``optiqa study TINY --out first``, SIGKILL mid-training (a checkpoint of
       ``sr_x4__ssim__none`` on disk); ``first`` copied to ``elsewhere/moved`` and deleted (a
       relocated half-finished study), then planned there by ``study moved --dry-run``;
    2. ``optiqa study moved``, SIGKILL mid-pool (once a new evaluation file is written); the
       finished files' mtimes recorded;
    3. the same, SIGKILL mid-transfer (a new entry in ``transfer/``) unless it ends first;
    4. the same command to the end.

    The runner and one CPU worker throughout, as ``finished``."""
    import shutil
    from types import SimpleNamespace

    cache = finished[1]
    root = tmp_path_factory.mktemp("interrupted")
    seen = SimpleNamespace(first=root / "first", moved=root / "elsewhere" / "moved")
    first, moved = seen.first, seen.moved

    def start(*args):
        return subprocess.Popen([sys.executable, "-m", "optiqa", "study", *map(str, args), "-q",
                                 *TWO_PROCESSES], env=_env(cache), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    def count(folder: Path, pattern: str) -> int:
        return len(list(folder.glob(pattern))) if folder.is_dir() else 0

    state = first / "runs" / "sr_x4__ssim__none" / "state"
    assert _kill_study(start(TINY, "--out", first), lambda: state.is_dir() and any(
        p.suffix == ".state" for p in state.iterdir())), "the study ended before the kill"
    shutil.copytree(first, moved)
    shutil.rmtree(first)
    seen.configs = {f: f.read_text() for f in [moved / "study.yaml",
                                               *(moved / "runs").glob("*/config.yaml")]}
    seen.marked = {p.parent.name for p in (moved / "runs").glob("*/complete.json")}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OPTIQA_CACHE", str(cache))
        seen.dry = run_main("study", moved, "--dry-run", "--json")

    # the ssim cell is not trained, so its evaluation at least is still to come
    at_start = count(moved / "evaluate", "*.json")
    seen.pool_killed = _kill_study(start(moved), lambda: count(
        moved / "evaluate", "*.json") >= max(3, at_start + 1))
    seen.done = {p: p.stat().st_mtime_ns for pattern in (
        "runs/*/complete.json", "evaluate/*.json", "transfer/*.json")
        for p in moved.glob(pattern)}

    at_start = count(moved / "transfer", "*")
    seen.transfer_killed = _kill_study(start(moved), lambda: count(
        moved / "transfer", "*") > at_start)

    seen.killed = 1 + seen.pool_killed + seen.transfer_killed
    seen.final = _optiqa(cache, "study", moved, "-q", *TWO_PROCESSES)
    return seen


def test_sigkill_at_any_moment_then_rerun_gives_the_same_report(interrupted, finished):
    """Killed mid-training, mid-pool and mid-transfer (``interrupted``); the same command
    continues and the report's numbers equal an uninterrupted run's."""
    assert interrupted.final.returncode == 0, interrupted.final.stderr[-2000:]
    assert interrupted.killed >= 2
    assert _numbers(interrupted.moved) == _numbers(finished[0])


def test_killed_in_the_pool_then_rerun_redoes_nothing_finished(interrupted, one_process):
    """(The CPU pool.) SIGKILL mid-pool (``interrupted``'s second run), then the same command
    (twice there): no file finished before the kill rewritten, and every number equals the
    one-process run's."""
    assert interrupted.pool_killed, "the study ended before the kill in the pool"
    assert interrupted.final.returncode == 0, interrupted.final.stderr[-2000:]
    done = interrupted.done
    assert len(done) >= 3
    assert {p: p.stat().st_mtime_ns for p in done} == done  # nothing finished redone
    assert _every_number(interrupted.moved) == _every_number(one_process)


def test_a_half_finished_study_moved_elsewhere_continues_to_the_same_tables(interrupted,
                                                                           finished):
    """A study folder is relocatable (issue 24, 2): interrupted mid-training, copied to another
    path (the original deleted) and continued there with ``optiqa study FOLDER``
    (``interrupted``, killed twice more there), it gives the tables of an uninterrupted run;
    nothing in it names the old path."""
    seen = interrupted
    moved = seen.moved
    for f, text in seen.configs.items():
        assert str(seen.first) not in text, f
    dry = seen.dry
    assert dry.returncode == 0, dry.stderr[-2000:]
    rows = {r["run"]: r for r in json.loads(dry.stdout)["runs"]}
    assert rows["pretrain__sr_x4"]["train"] == "trained"   # every cell starts from it
    for name, row in rows.items():  # which cells came first is the CPU pool's order
        assert (row["train"] == "trained") == (name in seen.marked), row
    assert any(r["train"] == "pending" for r in rows.values())
    part = rows["sr_x4__ssim__none"]
    assert part["train"] in ("partial", "trained"), part
    if part["train"] == "partial":  # says what is missing
        assert part["why"] and (part["remaining_steps"] > 0 or "not marked" in part["why"])
    done = seen.final
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"report: {moved / 'report' / 'report.html'}" in done.stdout
    assert _tables(moved) == _tables(finished[0])
    if part["train"] == "partial" and not part["iterations"].startswith("0/"):
        assert "resuming" in (moved / "runs" / "sr_x4__ssim__none" / "log.txt").read_text()


def test_two_runners_at_once_train_each_cell_once(tmp_path, finished):
    _, cache = finished
    out = tmp_path / "c"
    # two runners without CPU workers: the point is two processes taking cells by their locks
    # (a worker takes them by the same locks; the pool's tests above share cells with one)
    cmd = [sys.executable, "-m", "optiqa", "study", str(TINY), "--out", str(out), "-q",
           "--stage", "train", "--cpu-workers", "1"]
    procs = [subprocess.Popen(cmd, env=_env(cache), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1][-1500:] for r in results]
    for run in (out / "runs").iterdir():
        log = (run / "log.txt").read_text()
        assert log.count(": starting on ") == 1, run.name  # trained once, never twice
        assert "resuming" not in log
        assert (run / "complete.json").is_file()
    assert not any((out / "locks").glob("*.lock"))
    with sqlite3.connect(out / "results.db") as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_stale_lock_of_a_dead_runner_is_taken_over(tmp_path):
    from optiqa.study.locks import CellLock, is_stale, read_lock

    path = tmp_path / "train__x.lock"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    import socket

    path.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead),
                                "heartbeat": time.time()}))
    assert is_stale(read_lock(path))
    with CellLock(path) as got:
        assert got and read_lock(path)["pid"] == os.getpid()
        with CellLock(path) as second:  # a live owner's lock is respected
            assert not second
    assert not path.exists()
    # another host's lock is stale only when its heartbeat is old
    assert not is_stale({"host": "elsewhere", "pid": 1, "heartbeat": time.time()})
    assert is_stale({"host": "elsewhere", "pid": 1, "heartbeat": time.time() - 3600})


def test_slurm_launcher_through_submitits_local_executor(tmp_path, finished):
    pytest.importorskip("submitit", reason="the slurm launcher needs submitit (optiqa[slurm])")
    _, cache = finished
    out = tmp_path / "d"
    proc = _study(out, cache, "--stage", "train", "--launcher", "slurm", "--cells",
                  "sr_x4__l1__*", "launcher.slurm.extra={cluster: local}")
    assert proc.returncode == 0
    submitted = sorted(p.stem for p in (out / "slurm").glob("*.json"))
    assert submitted == ["pretrain__sr_x4", "sr_x4__l1__none", "sr_x4__l1__patch__w0.01"]
    for name in submitted:
        assert (out / "runs" / name / "complete.json").is_file()
    assert not (out / "runs" / "sr_x4__ssim__none").exists()  # not selected
    # without SLURM and without the local cluster, the launcher says what is missing
    bad = run_main("study", TINY, "--out", tmp_path / "e", "-q", "--stage", "train",
                   "--launcher", "slurm")
    assert bad.returncode == 2 and "sbatch not found" in bad.stderr


def test_report_renders_in_a_real_browser(finished, browser, tmp_path):
    out, _ = finished
    page = browser.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((out / "report" / "report.html").as_uri())
    sizes = page.evaluate("() => Array.from(document.images).map(i => [i.complete, "
                          "i.naturalWidth, i.naturalHeight])")
    assert len(sizes) >= 4 and all(c and w > 0 and h > 0 for c, w, h in sizes), sizes
    assert errors == []
    assert page.locator("table").count() >= 5
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    page.close()


def test_human_judgments_enter_the_analysis_and_the_report(finished, tmp_path):
    """Simulated raters who prefer the model with the higher mean PSNR-Y over the crops they are
    shown (a transitive, noise-free preference): the evaluators are scored on exactly those
    crops, so psnr_y's ranking of the judged models must be the raters'. (Per-crop votes would
    not give a known answer: the tiny models differ by hundredths of a dB.)"""
    import shutil

    import numpy as np
    from PIL import Image

    import optiqa
    from optiqa.judge.manifest import load_manifest
    from optiqa.judge.store import JudgmentStore, Trial
    from optiqa.study.analysis import run_analysis
    from optiqa.study.plan import load_plan
    from optiqa.study.report import write_report

    out = tmp_path / "h"
    shutil.copytree(finished[0], out, ignore=shutil.ignore_patterns("*.lock"))
    plan = load_plan(out)
    images = load_manifest(out)
    names = sorted(c.name for c in plan.cells)
    box = (8, 8, 32, 32)
    psnr_y = optiqa.create_metric("psnr_y")

    def crop(path):
        x, y, w, h = box
        a = np.asarray(Image.open(path).convert("RGB"))[y:y + h, x:x + w]
        return torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255

    ids = sorted(images.references)
    mean_psnr = {m: np.mean([float(psnr_y(crop(images.runs[m].images[i]),
                                          crop(images.references[i]))) for i in ids])
                 for m in names}
    store = JudgmentStore(out / "judgments.db")
    n = 0
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for image in ids:
                pa, pb = mean_psnr[a], mean_psnr[b]
                trial = Trial(f"t{n}", f"sim{n % 3}", n, image, 0, box, a, b, None, time.time())
                store.issue(trial)
                store.record_vote(trial, "left" if pa >= pb else "right", 500.0)
                n += 1
    store.close()
    analysis = run_analysis(plan)
    human = analysis.human
    assert human.has_votes and human.fit.n_votes == n
    psnr = next(x for x in human.by_evaluator if x.evaluator == "psnr_y")
    # psnr_y may not judge the l1 models (pixel family): the 6 others are compared
    judged = [v for m, v in mean_psnr.items() if "__l1__" not in m]
    assert len(set(judged)) == len(judged) == 6  # no ties among them: the order is known
    assert psnr.n == 6 and psnr.spearman > 0.99
    assert human.crops.n == len(ids) and psnr.stimuli == f"the {len(ids)} crops the " \
        "raters saw"
    assert human.fit.resampled == "raters and images" and human.fit.n_raters == 3
    paths = write_report(plan)
    html = Path(paths["html"]).read_text()
    assert "Bradley-Terry scores of the models" in html and "People as the evaluator" in html


def _optiqa(cache: Path, *args, timeout=900):
    cmd = [sys.executable, "-m", "optiqa", *map(str, args)]
    return subprocess.run(cmd, env=_env(cache), capture_output=True, text=True, timeout=timeout)


def _tables(out: Path) -> dict:
    return {p.name: p.read_text() for p in sorted((out / "report" / "tables").glob("*.csv"))}


def test_report_analyses_again_when_votes_arrive(finished, study_cache, tmp_path):
    """``optiqa report STUDY`` shows votes cast after the last analysis (issue 24, 1): the
    analysis is keyed by the results, the votes and the settings, and redone when they change;
    "no votes yet" appears only while there are none."""
    import shutil

    from optiqa.judge.store import JudgmentStore, Trial

    out = tmp_path / "r"
    shutil.copytree(finished[0], out, ignore=shutil.ignore_patterns("*.lock"))
    first = run_main("report", out)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "no votes yet" in (out / "report" / "report.md").read_text()
    assert "analysis:" not in first.stderr  # nothing changed since the study's own analysis
    # two raters prefer the l1 model to the ssim model on every test image
    images = json.loads((out / "evaluate" / "sr_x4__l1__none.json").read_text())["sets"][
        "photos"]["images"]
    store = JudgmentStore(out / "judgments.db")
    n = 0
    for rater in ("ann", "bob"):
        for image in images:
            trial = Trial(f"t{n}", rater, n, f"sr_x4/photos/{image}", 0, (0, 0, 8, 8),
                          "sr_x4__l1__none", "sr_x4__ssim__none", None, time.time())
            store.issue(trial)
            store.record_vote(trial, "left", 500.0)
            n += 1
    store.close()
    second = run_main("report", out)
    assert second.returncode == 0, second.stderr[-2000:]
    md = (out / "report" / "report.md").read_text()
    assert "no votes yet" not in md and "Bradley-Terry scores of the models" in md
    assert f"analysis: redone from the current results and {n} human vote(s)" in second.stderr
    assert json.loads((out / "analysis.json").read_text())["human"]["fit"]["n_votes"] == n
    scores = {r["model"]: r for r in csv.DictReader(open(out / "report" / "tables" /
                                                       "human_scores.csv"))}
    assert int(scores["sr_x4__l1__none"]["wins"]) == n
    # unchanged results and votes: the analysis is not redone
    before = (out / "analysis.json").stat().st_mtime_ns
    third = run_main("report", out)
    assert third.returncode == 0 and "analysis:" not in third.stderr
    assert (out / "analysis.json").stat().st_mtime_ns == before


def test_a_misspelt_key_in_a_result_file_fails_the_report_naming_it(finished, study_cache):
    """The report reads every result file into typed rows where it reads it: a misspelt key in
    an assessment file stops ``optiqa report`` with one error naming the file, the row and the
    key, before anything is written (not a silently empty table cell)."""
    out = finished[0]
    path = out / "assess" / "synthetic.json"
    text, stat = path.read_text(), path.stat()
    written = _tables(out)
    try:
        assert '"srcc":' in text
        path.write_text(text.replace('"srcc":', '"srcx":', 1))
        proc = run_main("report", out)
        assert proc.returncode != 0
        assert (f"{path}: AssessmentFile.results: MetricAssessment: unknown key 'srcx'"
                in proc.stderr), proc.stderr[-2000:]
        assert _tables(out) == written
    finally:
        path.write_text(text)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
