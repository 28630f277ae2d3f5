"""Running the ``optiqa`` command as a user does, in a subprocess or in this process.

:func:`run_optiqa`: ``python -m optiqa`` with this checkout's ``src`` first on the path and
``HF_HUB_OFFLINE=1``; :func:`run_script` runs a small Python program instead (e.g. one that
registers a stand-in metric and then calls ``optiqa.cli.main``). Both pay for a fresh interpreter
and its torch/timm imports (seconds of CPU each), so tests whose point is not the process
boundary (imports, signals, environment read at import time) use :func:`run_main`: the same
``optiqa.cli.main`` in this process, returning the same ``CompletedProcess``.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import traceback
import warnings
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


# warnings a fresh interpreter does not print (its default filters), see the `warnings` docs
_SILENT_BY_DEFAULT = (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                      ResourceWarning)


def run_main(*args, cwd=None) -> subprocess.CompletedProcess:
    """``optiqa ARGS`` through ``optiqa.cli.main`` in this process, as :func:`run_optiqa` would
    report it: stdout and stderr as text, with the logging that ``main`` configures (root logger
    emptied first, as in a fresh process; pytest's handlers put back after) and the Python
    warnings a fresh interpreter would print; the exit status, 2 for argument errors
    (``SystemExit``) and 1 with the traceback on stderr for an unexpected exception. ``cwd``:
    the working directory during the call."""
    from optiqa.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    here = os.getcwd()
    root.handlers.clear()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            try:
                code = main(argv)
            except SystemExit as e:  # argparse has printed its message already
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
            except Exception:  # what the interpreter prints for an uncaught exception
                traceback.print_exc()
                code = 1
            for w in caught:
                if not issubclass(w.category, _SILENT_BY_DEFAULT):
                    err.write(warnings.formatwarning(w.message, w.category, w.filename,
                                                     w.lineno, w.line))
    finally:
        os.chdir(here)
        for h in root.handlers:
            if h not in handlers:
                h.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    return subprocess.CompletedProcess(["optiqa", *argv], code, out.getvalue(), err.getvalue())
