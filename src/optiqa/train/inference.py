"""Old name of :mod:`optiqa.restore.generator`, kept for one release (0.2.x): restoring and
scoring images is not training. The same module object under both names."""
import sys
import warnings

from optiqa.restore import generator as _module

warnings.warn("optiqa.train.inference is now optiqa.restore.generator; the old name goes in 0.3",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
