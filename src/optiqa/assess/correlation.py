"""Moved to :mod:`optiqa.stats.correlation` (pure statistics belong to the ``stats`` layer).

An import shim kept for one release (0.x -> next) because ``optiqa.assess.correlation`` was a
public module users import (``srcc``, ``krcc``, ``plcc``, the logistic fit); it will be removed
after that release.
"""
from optiqa.stats.correlation import *  # noqa: F401,F403
