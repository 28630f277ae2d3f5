"""Exceptions that cross module boundaries.

Every error a user can cause (bad image, bad config, missing weights, unknown name) derives from
:class:`OptiqaError`; the CLI prints its message on one line and exits with code 2.
"""
from __future__ import annotations


class OptiqaError(Exception):
    """Base class for errors caused by the user's input or environment (CLI exit code 2)."""


class InputError(OptiqaError, ValueError):
    """An image, tensor or file that a metric or loader cannot take; the message names the problem."""


class ConfigError(OptiqaError, ValueError):
    """A configuration or command-line value that is unknown or inconsistent."""


class UnknownNameError(OptiqaError, KeyError):
    """An unknown metric, backbone, dataset, ... name. Lists the valid names."""

    def __init__(self, kind: str, name: str, valid):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid names: {', '.join(self.valid)}")

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return self.args[0]


class WeightsUnavailable(OptiqaError, RuntimeError):
    """Pretrained weights are not on this machine and cannot be downloaded.

    Raised instead of silently falling back to random weights.
    """
