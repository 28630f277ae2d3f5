"""Stopping a training run cleanly on SIGINT (Ctrl-C) or SIGTERM (a scheduler's notice).

The first signal only sets a flag: the trainer finishes the iteration it is in, writes a complete
checkpoint (atomically, like every checkpoint) and raises :class:`TrainingInterrupted`; resuming
from that checkpoint gives the same run as if it had never stopped. A second signal exits at once
with status 130 (the newest complete checkpoint stays valid: writes are atomic).

Under ``torchrun`` (several processes) the launcher forwards a signal to every rank, but the ranks
may receive it in different iterations; they agree on the iteration to stop at through one
all-reduce per iteration (:func:`optiqa.train.distributed.any_true`), then save together.
"""
from __future__ import annotations

import os
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_STATUS = 130


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving the checkpoint of ``iteration``."""

    def __init__(self, iteration: int, run_dir, signal_name: str):
        super().__init__(f"interrupted at iteration {iteration} ({signal_name})")
        self.iteration, self.run_dir, self.signal_name = iteration, run_dir, signal_name


class StopOnSignal:
    """Context manager: the first SIGINT/SIGTERM sets :attr:`signal_name`, the second exits.

    Only the main thread can install signal handlers; elsewhere (a notebook's worker thread)
    this is a no-op and signals keep their usual effect.
    """

    def __init__(self, signals=SIGNALS):
        self.signals = signals
        self.signal_name: str | None = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.signal_name is not None:
            os.write(2, f"\noptiqa: second signal ({name}): exiting at once; the newest "
                        "complete checkpoint is intact\n".encode())
            os._exit(EXIT_STATUS)
        self.signal_name = name
        os.write(2, f"\noptiqa: {name} received: stopping after this iteration and saving a "
                    "checkpoint (send it again to exit at once)\n".encode())

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
