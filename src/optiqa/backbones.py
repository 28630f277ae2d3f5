"""``optiqa.backbones``: the public name of :mod:`optiqa.models.backbones` (DESIGN.md's
``optiqa.backbones.create(name)``).

The module object is the same (``sys.modules`` points both names at it), so attributes set
through either name, e.g. by ``monkeypatch``, are seen by both.
"""
import sys

from optiqa.models import backbones as _backbones

sys.modules[__name__] = _backbones
