"""Exceptions that cross module boundaries.

Every error a user can cause (bad image, bad config, missing weights, unknown name) derives from
:class:`OptiqaError`; the CLI prints its message on one line (a configuration with several
problems: one line each, :class:`Problems`) and exits with code 2.

Library messages speak of values and parameters, never of command-line flags: an error may name
the parameter it concerns in ``option`` (e.g. ``"root"``), and the command line adds which flag
sets it.
"""
from __future__ import annotations

import difflib


class OptiqaError(Exception):
    """Base class for errors caused by the user's input or environment (CLI exit code 2).

    ``option``: the library parameter the error is about (``root``, ``arch``, ...), if any.
    """

    def __init__(self, *args, option: str | None = None):
        super().__init__(*args)
        self.option = option


class InputError(OptiqaError, ValueError):
    """An image, tensor or file that a metric or loader cannot take; the message names the problem."""


class ConfigError(OptiqaError, ValueError):
    """A configuration or command-line value that is unknown or inconsistent.

    ``problems``: every problem found, one line each (a config reports all of them at once,
    :class:`Problems`); the message is the problem itself when it is alone, else a count and
    one indented line per problem."""

    def __init__(self, *args, option: str | None = None, problems=None):
        self.problems = list(dict.fromkeys(problems or ([str(args[0])] if args else [])))
        if problems and not args:
            args = (self.problems[0] if len(self.problems) == 1 else
                    f"{len(self.problems)} problems in the configuration:\n" +
                    "\n".join(f"  - {p}" for p in self.problems),)
        super().__init__(*args, option=option)


class WorkerError(OptiqaError, RuntimeError):
    """A worker process of a study (a CPU or GPU worker) ended with an error or was killed: not a
    problem of the configuration. The message gives its exit status and the end of its log;
    rerunning the same command continues the study (finished work is kept)."""


class Problems:
    """Collects configuration problems so that they are reported together, not one per run::

        problems = Problems()
        with problems.collect():
            check_one_thing()        # a ConfigError here is recorded, and the next check runs
        problems.add("key: what is wrong")
        problems.raise_any()         # one ConfigError listing them all (if any)
    """

    def __init__(self):
        self.items: list[str] = []

    def add(self, problem) -> None:
        self.items += problem.problems if isinstance(problem, ConfigError) else [str(problem)]

    def collect(self):
        from contextlib import contextmanager

        @contextmanager
        def catching():
            try:
                yield
            except ConfigError as e:
                self.add(e)
        return catching()

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_any(self) -> None:
        if self.items:
            raise ConfigError(problems=self.items)


def did_you_mean(name, valid) -> str | None:
    """The valid name closest to ``name`` (difflib ratio >= 0.6), or None."""
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1)
    return close[0] if close else None


class UnknownNameError(OptiqaError, KeyError):
    """An unknown metric, backbone, dataset, ... name. Suggests the closest and lists the valid."""

    def __init__(self, kind: str, name: str, valid, option: str | None = None):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        self.suggestion = did_you_mean(name, self.valid)
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        super().__init__(f"unknown {kind} {name!r}{hint}; valid names: {', '.join(self.valid)}",
                         option=option)

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return self.args[0]


class WeightsUnavailable(OptiqaError, RuntimeError):
    """Pretrained weights are not on this machine and cannot be downloaded.

    Raised instead of silently falling back to random weights.
    """
