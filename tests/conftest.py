"""Shared fixtures. Tests run offline on the CPU; data in ../shared is optional (skip if absent)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Under pytest-xdist (`make test` runs `pytest -n auto`: one worker per core) each worker gets
# cores / workers threads, so that the workers' intra-op thread pools do not oversubscribe the
# cores; set before torch is imported, and in the environment so that the CLI subprocesses some
# tests start inherit it.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
if _WORKERS:
    _THREADS = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _THREADS

import torch  # noqa: E402

if _WORKERS:
    torch.set_num_threads(int(_THREADS))

# The files that take longest, longest first: CPU seconds (the test process + its subprocesses)
# of each file run alone on one thread (`pytest -n 0`, OMP_NUM_THREADS=1, no ../shared) on the
# 2-core machine, 2026-12-06 19:15-19:50 UTC at load 4-12: test_study_run 163 (184 before its
# three interrupted-study tests shared one study), test_metric_losses ~85, test_rehearsal 46,
# test_resume 39, test_ddp 35, test_cli_entry 33, test_deep_metrics 30, test_metric_properties
# 30, test_study_workers 26, test_study_pool 19, test_assess_cli 13, test_asymmetry 10,
# test_edges_cli (>= 8). Collected first, so that `make test` (--dist loadfile
# --no-loadscope-reorder) hands them out first and the short files fill the gaps: a long file
# started last runs alone at the end while the other worker idles (xdist's default orders files
# by their number of tests, which put test_resume.py and test_rehearsal.py, four and five
# tests, last). The other files keep their order.
LONG_FILES = ("test_study_run.py", "test_metric_losses.py", "test_rehearsal.py", "test_resume.py",
              "test_ddp.py", "test_cli_entry.py", "test_deep_metrics.py",
              "test_metric_properties.py", "test_study_workers.py", "test_study_pool.py",
              "test_assess_cli.py", "test_asymmetry.py", "test_edges_cli.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable


REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OPTIQA_SHARED", REPO.parent / "shared")) / "data"
CALIBRATION = SHARED / "iqa" / "calibration"


def shared_path(*parts: str) -> Path:
    """Path inside ../shared/data, skipping the test when it is absent (a user's fresh clone)."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p}")
    return p


@pytest.fixture(scope="session")
def calibration():
    """The five TID2013 pairs and the official scores: (names, dist NCHW, ref NCHW, {metric: [..]})."""
    from optiqa.data.io import read_image

    root = shared_path("iqa", "calibration")
    with open(root / "official_scores.csv", newline="") as f:
        rows = list(csv.reader(f))
    names = rows[0][1:]
    official = {r[0]: [float(v) for v in r[1:]] for r in rows[1:]}
    dist = torch.stack([read_image(root / "dist" / n) for n in names])
    ref = torch.stack([read_image(root / "ref" / n) for n in names])
    return names, dist, ref, official


@pytest.fixture(scope="session")
def astronaut():
    """The built-in astronaut photo at 256 x 256, ``(1, 3, 256, 256)`` in [0, 1] (no download).

    Shared, so tests must not modify it in place. Helpers for other test images and degradations
    are in ``tests/imaging.py``.
    """
    from optiqa.data.samples import load_sample

    return load_sample("astronaut", 256)[None]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --------------------------------------------------------------------------- headless Chromium
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def _install_chromium() -> str | None:
    """None when Debian's Chromium is there (installed now if need be), else why it is not."""
    import shutil
    import subprocess

    if os.path.exists(CHROMIUM):
        return None
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"{CHROMIUM} is missing and cannot be installed here (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = None
    for cmd in (["apt-get", "install", "-y", "-q", "chromium"],
                ["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if cmd[1] == "install" and done.returncode == 0 and os.path.exists(CHROMIUM):
            return None
    return f"apt-get install chromium failed: {done.stderr.strip()[-300:]}"


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium (Debian's, driven by Playwright; never Playwright's own download)."""
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="Playwright's Python driver is not installed")
    reason = _install_chromium()
    if reason:
        pytest.skip(reason)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def offline_and_empty(monkeypatch, tmp_path):
    """No weights anywhere: empty $OPTIQA_WEIGHTS and $TORCH_HOME, no HF cache hits, offline."""
    import huggingface_hub
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OPTIQA_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    return tmp_path
