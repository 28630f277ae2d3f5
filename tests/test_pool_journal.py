"""The CPU pool's journal (optiqa.study.pool.drain): one line per piece a process ran, with its
status, wall seconds and the process's CPU seconds while it ran (the profile of a study)."""
import json
import time

from optiqa.study.pool import Task, drain


def test_the_journal_has_one_line_per_piece_run_here_with_its_cpu_and_wall_time(tmp_path):
    def spin():  # about 0.2 s of CPU
        t0 = time.process_time()
        while time.process_time() - t0 < 0.2:
            pass
        return "spun"

    def nap():   # wall time without CPU
        time.sleep(0.2)
        return "slept"
    tasks = [Task("t", "spin", tmp_path / "a.lock", spin),
             Task("t", "nap", tmp_path / "b.lock", nap),
             Task("t", "found", tmp_path / "c.lock", lambda: "x", done=lambda: True)]
    journal = tmp_path / "logs" / "pool-1.jsonl"
    status = drain(tasks, journal=journal)
    rows = [json.loads(line) for line in journal.read_text().splitlines()]
    # a piece found done is not run, so it has no line
    assert [r["task"] for r in rows] == ["t:spin", "t:nap"] and status["t:found"] == "done"
    spin_row, nap_row = rows
    assert spin_row["status"] == "spun" and nap_row["status"] == "slept"
    assert spin_row["cpu_s"] >= 0.19 and spin_row["wall_s"] >= spin_row["cpu_s"] - 0.02
    assert nap_row["wall_s"] >= 0.19 and nap_row["cpu_s"] < 0.1
    assert spin_row["start"] <= nap_row["start"] and spin_row["threads"] == 1
