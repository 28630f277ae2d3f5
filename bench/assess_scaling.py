"""How the time of `optiqa assess` grows with the number of pairs: a table and a log-log plot.

A KADID-shaped database (512x384 PNG references from the built-in photos, each distorted 125
times, a ``KADID10k.csv``-style meta file; :func:`assess_speed.build_kadid_like`) of ``--total``
pairs (KADID-10k: 10,125) is written to ``--folder``; then the real command

    optiqa assess -m METRIC -d kadid10k --root FOLDER --meta META --bootstrap 0 -q --workers W

is timed (a fresh empty result cache each time, so nothing is reused) on the first 1/8, 1/4, 1/2
and all of the pairs (``--fractions``). Each run reports its wall time (process start included)
and its CPU time (user + system of the command and its DataLoader workers, from ``getrusage``):
on a shared machine the wall time includes waiting for a core, the CPU time does not. Linear
growth shows as a slope of 1 on the log-log plot. A fraction whose wall time, predicted linearly
from the previous one, would exceed ``--budget`` seconds is not run and is listed as skipped:
nothing is extrapolated.

``--overlap N`` checks that decoding overlaps scoring: the first metric on the first N pairs with
``--workers 0`` (the main process decodes, then scores, one after the other) and with
``--workers W`` (each worker decodes and scores its own batches, so one worker's decoding runs
while another scores), and the CPU time of decoding those N pairs alone (``read_pixels``, as the
loader reads them: each distorted image, each reference once).

``--single-run`` runs only the largest fraction and records the smaller ones as the cumulative
times inside it (read from the command's progress bar on a pseudo-terminal; CPU time of the
process tree from ``/proc``), so one run of 1/4 also gives 1/64 ... 1/8; ``--deadline HH:MM``
(UTC; the next such time, so after midnight when it is past) stops such a run and keeps the
marks it reached. Only the pairs the runs read are written.

``--json FILE`` keeps every measurement (runs of several invocations add up); the table and the
plot show all of them.

    python bench/assess_scaling.py --folder /tmp/kadid_like                 # KADID-sized
    python bench/assess_scaling.py --total 1000 --metrics ssim --budget 300  # what fits
    python bench/assess_scaling.py --metrics dists_vgg16_r --single-run \
        --fractions 1/64 1/32 1/16 1/8 1/4 --deadline 14:48  # one run, cumulative marks
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from assess_speed import KADID_PAIRS, build_kadid_like, write_meta  # noqa: E402

FRACTIONS = ("1/8", "1/4", "1/2", "1")


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and all its descendants,
    live or already waited for, from ``/proc`` (Linux)."""
    parent, times = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        # after the command name: state ppid ... utime(12) stime(13) cutime(14) cstime(15)
        parent[int(entry)] = int(fields[1])
        times[int(entry)] = sum(int(v) for v in fields[11:15])
    tree, grew = {pid}, True
    while grew:
        more = {p for p, pp in parent.items() if pp in tree} - tree
        grew, tree = bool(more), tree | more
    return sum(times.get(p, 0) for p in tree) / os.sysconf("SC_CLK_TCK")


def _follow_progress(fd: int, proc, t0: float, checkpoints: list[int], marks: list,
                     text: list, on_mark=None) -> None:
    """Read the command's progress bar from a pseudo-terminal and note (pairs done, wall, CPU
    of the whole process tree) when it first reaches each of ``checkpoints``."""
    import re

    pending = sorted(checkpoints)
    buf = ""
    while True:
        try:
            chunk = os.read(fd, 4096).decode(errors="replace")
        except OSError:  # the terminal's other side closed: the command ended
            break
        if not chunk:
            break
        buf += chunk
        *lines, buf = re.split(r"[\r\n]", buf)
        text.extend(lines)
        for line in lines:
            done = re.search(r"\|\s*(\d+)/(\d+) \[", line)
            if done and pending and int(done.group(1)) >= pending[0]:
                n = int(done.group(1))
                wall, cpu = time.perf_counter() - t0, tree_cpu(proc.pid)
                while pending and n >= pending[0]:
                    marks.append((pending.pop(0), n, wall, cpu))
                    if on_mark is not None:
                        on_mark(marks[-1])


def time_assess(metric: str, folder: Path, meta: Path, workers: int, batch: int,
                device: str = "cpu", checkpoints: list[int] | None = None, on_mark=None,
                stop_at: float | None = None) -> tuple[float, float, list, bool] | None:
    """(wall seconds, CPU seconds, checkpoints, finished) of one `optiqa assess` run (process
    start included), no cache reuse; None (with the reason printed) when the command fails.

    With ``checkpoints`` (pair counts), the command draws its progress bar on a
    pseudo-terminal that this process reads, and the third element lists, for each count,
    ``(count, pairs done when first reached, wall s, CPU s)`` since the start: the cumulative
    times of the smaller fractions within this one run. Pairs are scored in meta order, so the
    pairs done at a mark are the first ones; a mark falls on a batch boundary (up to
    ``batch - 1`` pairs past the count), and its CPU time includes what the other worker had
    already done on the next batch. ``on_mark(mark)`` is called as each is reached. A run
    still going at ``stop_at`` (a ``time.time()``) is stopped there (its process group
    terminated): ``finished`` is then False, the times are those at the stop and the marks
    reached before it stand.
    """
    import signal
    import threading

    with tempfile.TemporaryDirectory(prefix="optiqa_cache_", dir=folder) as cache:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OPTIQA_CACHE": cache}
        cmd = [sys.executable, "-m", "optiqa", "assess", "-m", metric, "-d", "kadid10k",
               "--root", str(folder), "--meta", str(meta), "--bootstrap", "0",
               "--workers", str(workers), "--batch-size", str(batch), "--device", device]
        marks, text, finished = [], [], True
        cpu0, t0 = _children_cpu(), time.perf_counter()
        if checkpoints:
            import fcntl
            import pty
            import struct
            import termios

            master, slave = pty.openpty()
            # a new terminal is 0 columns wide, and tqdm would draw an empty bar on it
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=slave,
                                    text=True, start_new_session=True)
            os.close(slave)
            reader = threading.Thread(target=_follow_progress, args=(
                master, proc, t0, checkpoints, marks, text, on_mark))
            reader.start()
            try:
                proc.communicate(timeout=None if stop_at is None else
                                 max(1.0, stop_at - time.time()))
            except subprocess.TimeoutExpired:  # the deadline: stop the command and its workers
                finished, stop_cpu = False, tree_cpu(proc.pid)  # workers' CPU included
                os.killpg(proc.pid, signal.SIGTERM)
                proc.communicate()
            reader.join()
            os.close(master)
            returncode, stderr = proc.returncode, "\n".join(text)
        else:
            done = subprocess.run(cmd + ["-q"], env=env, capture_output=True, text=True)
            returncode, stderr = done.returncode, done.stderr
        elapsed, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
        if not finished:
            cpu = stop_cpu
    if returncode and finished:  # e.g. pretrained weights not on this machine: say so, go on
        lines = [ln for ln in stderr.strip().splitlines() if ln.strip()] or ["(no message)"]
        print(f"{metric}: optiqa assess failed ({meta.name}): {lines[-1][:200]}")
        return None
    return elapsed, cpu, marks, finished


def decode_cpu(folder: Path, rows) -> float:
    """CPU seconds to decode the pairs' images as the loader does (each distorted image, each
    reference once), in this process."""
    from optiqa.data.io import read_pixels

    t0 = time.process_time()
    for ref in dict.fromkeys(r for r, _ in rows):
        read_pixels(folder / "images" / ref)
    for _, dist in rows:
        read_pixels(folder / "images" / dist)
    return time.process_time() - t0


def label(frac: Fraction) -> str:
    return "all" if frac == 1 else str(frac)


def machine() -> str:
    """This computer's CPU model and core count, as recorded with every run."""
    name = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                        name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def series(run: dict) -> tuple[str, str, str]:
    """``(metric, machine, which run)``: the rows that belong on one curve and in one fit. The
    cumulative times inside one ``--single-run`` and its end are a series of their own (the load
    of that run, not of others); separate runs of a metric on a machine form one series."""
    within = run.get("within") or (run["fraction"] if run.get("single_run") else None)
    return (run["metric"], run.get("machine", ""),
            f"inside one run of {within}" if within else "separate runs")


def plot(runs: list[dict], path: Path, total: int) -> None:
    """Wall and CPU time against pairs, log-log, one colour per :func:`series` (metric, machine
    and run); cumulative times within a larger run are open markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.6, 5.0))
    machines = list(dict.fromkeys(r.get("machine", "") for r in runs))
    curves = dict.fromkeys(series(r) for r in runs)
    several_runs = {(m, w) for m, w, _ in curves}
    several_runs = len(several_runs) < len(curves)   # some metric and machine: several series
    for i, key in enumerate(curves):
        metric, where, run = key
        rows = sorted((r["pairs"], r["wall"], r["cpu"], bool(r.get("within"))) for r in runs
                      if series(r) == key and r["workers"] == runs[0]["workers"]
                      and r.get("scaling", True))
        if not rows:
            continue
        ns, walls, cpus, within = zip(*rows)
        colour = f"C{i}"
        short = where.split(",")[0].split(" (")[0].replace("(R)", "")
        name = metric if len(machines) == 1 else f"{metric}, {short}"
        if several_runs:
            name += f", {run}"
        ax.loglog(ns, walls, "o-", color=colour, label=f"{name}: wall")
        ax.loglog(ns, cpus, "s--", color=colour, label=f"{name}: CPU", alpha=0.7)
        for ts, marker in ((walls, "o"), (cpus, "s")):
            opened = [(n, t) for n, t, w in zip(ns, ts, within) if w]
            if opened:
                ax.loglog(*zip(*opened), marker, color=colour, mfc="white", ls="none")
        for ts in (walls, cpus):  # slope-1 guides through the largest run: linear growth
            ax.loglog([ns[0], ns[-1]], [ts[-1] * ns[0] / ns[-1], ts[-1]], ":", color="grey",
                      lw=1)
    ax.set_xlabel("pairs scored")
    ax.set_ylabel("optiqa assess time (s)")
    ax.set_title(f"optiqa assess, KADID-shaped 512x384 PNGs ({total} pairs = all)\n"
                 "(dotted: linear growth through each curve's largest run;\n"
                 "open markers: cumulative times inside a larger run)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the curves
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def table(runs: list[dict]) -> None:
    print("\n| metric | fraction | pairs | workers | wall s | CPU s | pairs/s (wall) | "
          "CPU ms/pair | load |\n|---|---|---:|---:|---:|---:|---:|---:|---:|")
    several = len({r.get("machine", "") for r in runs if "machine" in r}) > 1
    for r in sorted(runs, key=lambda r: (r["metric"], r.get("machine", ""), r["workers"],
                                         r["pairs"])):
        name = r["metric"]
        if several and r.get("machine"):
            name += f" ({r['machine'].split(',')[0]})"
        if r["wall"] is None:
            print(f"| {name} | {r['fraction']} | {r['pairs']} | {r['workers']} | "
                  f"not run ({r['why']}) | | | | |")
            continue
        within = f" (in the {r['within']} run)" if r.get("within") else ""
        print(f"| {name} | {r['fraction']}{within} | {r['pairs']} | {r['workers']} | "
              f"{r['wall']:.1f} | {r['cpu']:.1f} | {r['pairs'] / r['wall']:.2f} | "
              f"{1000 * r['cpu'] / r['pairs']:.0f} | {r['load']:.1f} |")


def next_utc(hhmm: str, now: float) -> float:
    """The first time at or after ``now`` (seconds since the epoch) whose UTC clock reads
    ``hhmm``: later today, or tomorrow when that time of day has passed, as ``shutdown HH:MM``
    reads it (a run started at 22:00 with ``--deadline 00:25`` stops 2 h 25 min later)."""
    import datetime as dt

    try:
        hh, mm = (int(v) for v in hhmm.split(":"))
        if not (0 <= hh < 24 and 0 <= mm < 60):
            raise ValueError
    except ValueError:
        raise ValueError(f"{hhmm!r} is not a UTC time of day HH:MM") from None
    start = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    at = start.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if at <= start:
        at += dt.timedelta(days=1)
    return at.timestamp()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--total", type=int, default=KADID_PAIRS, help="pairs in 'all' (KADID-10k: "
                   "10125)")
    p.add_argument("--metrics", nargs="+", default=["ssim", "dists_vgg16_r"])
    p.add_argument("--fractions", nargs="+", default=list(FRACTIONS),
                   help="fractions of --total to time, e.g. 1/64 1/32 (default 1/8 1/4 1/2 1)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--budget", type=float, default=3600.0,
                   help="skip a run predicted (linearly) to take longer than this many seconds")
    p.add_argument("--single-run", action="store_true",
                   help="run only the largest fraction and take the smaller ones as the "
                   "cumulative times within it (marked in the table)")
    p.add_argument("--deadline", metavar="HH:MM",
                   help="with --single-run: stop the run at this UTC time; the cumulative "
                   "times reached before it are kept")
    p.add_argument("--overlap", type=int, default=0, metavar="N",
                   help="also time the first metric on N pairs with --workers 0 and W, and "
                   "decoding those pairs alone")
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="processes that write the generated images")
    p.add_argument("--folder", help="keep the generated images here (reused when present)")
    p.add_argument("--json", help="measurements file: read when present, extended, rewritten")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: the table, fits and plot of what --json holds")
    p.add_argument("--plot", default=str(Path(__file__).resolve().parents[1] / "docs" /
                                         "figures" / "assess_scaling.png"))
    args = p.parse_args(argv)

    stop_at = None
    if args.deadline:
        try:
            stop_at = next_utc(args.deadline, time.time())
        except ValueError as err:
            p.error(f"--deadline: {err}")
    store = Path(args.json) if args.json else None
    runs = json.loads(store.read_text()) if store and store.exists() else []
    if args.report_only:
        report(runs, Path(args.plot), args.total)
        return 0
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="kadid_like_"))
    t0 = time.perf_counter()
    fractions = sorted(Fraction(f) for f in args.fractions)
    # only the pairs some run reads (the first ones are the same files whatever the total)
    need = max([max(1, round(args.total * f)) for f in fractions] + [args.overlap])
    rows = build_kadid_like(folder, min(need, args.total), args.jobs)
    print(f"data: {len(rows)} pairs at 512x384 in {folder} ({time.perf_counter() - t0:.0f} s to "
          f"write or find); {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"device {args.device}, {args.workers} workers, batch {args.batch_size}", flush=True)

    def record(run: dict) -> None:
        runs.append(run)
        if store:
            store.write_text(json.dumps(runs, indent=1))

    def one(metric: str, n: int, frac: str, workers: int, scaling: bool = True,
            within: dict | None = None) -> dict | None:
        """Time the first ``n`` pairs; ``within`` ({pair count: fraction label}) also records
        the cumulative times at those counts inside this run, as they are reached."""
        meta = folder / f"meta_{n}.csv"
        write_meta(meta, rows[:n])
        load = os.getloadavg()[0]

        def mark(m):
            count, done, wall, cpu = m
            record(dict(metric=metric, fraction=within[count], pairs=done, workers=workers,
                        wall=wall, cpu=cpu, load=(load + os.getloadavg()[0]) / 2,
                        scaling=scaling, within=frac, machine=machine()))
            print(f"{metric:14s} {within[count]:>5s} {done:6d} pairs, cumulative in the {frac} "
                  f"run: {wall:8.1f} s wall {cpu:8.1f} s CPU", flush=True)

        timed = time_assess(metric, folder, meta, workers, args.batch_size, args.device,
                            sorted(within) if within else None, mark, stop_at)
        if timed is None:
            return None
        load = (load + os.getloadavg()[0]) / 2
        if not timed[3]:
            why = f"stopped at the deadline after {timed[0]:.0f} s wall, {timed[1]:.0f} s CPU"
            print(f"{metric:14s} {frac:>5s} {n:6d} pairs: {why}", flush=True)
            record(dict(metric=metric, fraction=frac, pairs=n, workers=workers, wall=None,
                        cpu=None, why=why, load=load, machine=machine()))
            return None
        run = dict(metric=metric, fraction=frac, pairs=n, workers=workers, wall=timed[0],
                   cpu=timed[1], load=load, scaling=scaling, machine=machine())
        if within is not None:  # the end of a --single-run: one series with its marks
            run["single_run"] = True
        record(run)
        print(f"{metric:14s} {frac:>5s} {n:6d} pairs, {workers} workers: {timed[0]:8.1f} s wall "
              f"{timed[1]:8.1f} s CPU ({n / timed[0]:.2f} pairs/s), load {run['load']:.1f}",
              flush=True)
        return run

    if args.overlap:
        n = min(args.overlap, len(rows))
        for workers in (0, args.workers):
            one(args.metrics[0], n, f"{n} pairs", workers, scaling=False)
        d = decode_cpu(folder, rows[:n])
        record(dict(metric="decode only", fraction=f"{n} pairs", pairs=n, workers=0, wall=d,
                    cpu=d, load=os.getloadavg()[0], scaling=False))
        print(f"decoding alone: {d:.1f} s CPU for {n} pairs ({1000 * d / n:.1f} ms/pair)",
              flush=True)

    for metric in args.metrics:
        if args.single_run:
            counts = {max(1, round(args.total * f)): label(f) for f in fractions}
            n = max(counts)
            one(metric, n, counts.pop(n), args.workers, within=counts)
            continue
        previous = None
        for frac in fractions:
            n = max(1, round(args.total * frac))
            if previous and previous[1] * n / previous[0] > args.budget:
                why = (f"predicted {previous[1] * n / previous[0]:.0f} s > budget "
                       f"{args.budget:.0f} s")
                print(f"{metric:14s} {label(frac):>5s} {n:6d} pairs: skipped ({why})")
                record(dict(metric=metric, fraction=label(frac), pairs=n,
                            workers=args.workers, wall=None, cpu=None, why=why, load=0.0))
                continue
            run = one(metric, n, label(frac), args.workers)
            if run is None:
                break
            previous = (n, run["wall"])
    report(runs, Path(args.plot), args.total)
    return 0


def report(runs: list[dict], plot_path: Path, total: int) -> None:
    """The table, the log-log slopes and linear fits per :func:`series`, and the plot."""
    table(runs)
    measured = [r for r in runs if r["wall"] is not None]
    for key in dict.fromkeys(series(r) for r in measured):
        metric, where, run = key
        pts = [(r["pairs"], r["wall"], r["cpu"]) for r in measured if series(r) == key
               and r.get("scaling", True)]
        if len(pts) >= 2:  # t = start + n / rate by least squares: start-up vs per-pair cost
            import numpy as np

            ns = np.log([n for n, _, _ in pts])
            for what, k in (("wall", 1), ("CPU", 2)):
                slope = np.polyfit(ns, np.log([pt[k] for pt in pts]), 1)[0]
                per, start = np.polyfit([pt[0] for pt in pts], [pt[k] for pt in pts], 1)
                print(f"{metric} ({where or 'machine not recorded'}; {run}): {what}: log-log "
                      f"slope {slope:.3f}; fit t = {start:.1f} s + n x {1000 * per:.1f} ms")
    plot([r for r in measured if r.get("scaling", True)], plot_path, total)
    print(f"\nplot: {plot_path}")


if __name__ == "__main__":
    sys.exit(main())
