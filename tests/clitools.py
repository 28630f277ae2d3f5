"""Running the real ``optiqa`` entry point in a subprocess, as a user does.

``python -m optiqa`` with this checkout's ``src`` first on the path and ``HF_HUB_OFFLINE=1``;
:func:`run_script` runs a small Python program instead (e.g. one that registers a stand-in metric
and then calls ``optiqa.cli.main``).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def cli_env(**extra) -> dict:
    """The environment of a user's shell plus this checkout's ``src`` and offline mode; a value
    of None removes the variable."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def optiqa_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "optiqa", *map(str, args)]


def run_optiqa(*args, env=None, timeout=600, **kw) -> subprocess.CompletedProcess:
    """``optiqa ARGS`` in a subprocess; returns the completed process (text stdout/stderr)."""
    return subprocess.run(optiqa_cmd(*args), capture_output=True, text=True,
                          env=env or cli_env(), timeout=timeout, **kw)


def run_script(code: str, *args, env=None, timeout=600) -> subprocess.CompletedProcess:
    """``python -c CODE ARGS`` with the same environment as :func:`run_optiqa`."""
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, env=env or cli_env(), timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The single ``optiqa: error: ...`` line of a failed run (asserting there is nothing else)."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("optiqa: error: "), proc.stderr
    return lines[0]
