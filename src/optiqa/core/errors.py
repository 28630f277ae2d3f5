"""Exceptions that cross module boundaries.

Every error a user can cause (bad image, bad config, missing weights, unknown name) derives from
:class:`OptiqaError`; the CLI prints its message on one line and exits with code 2.

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
    """A configuration or command-line value that is unknown or inconsistent."""


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
