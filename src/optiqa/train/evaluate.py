"""Old name of :mod:`optiqa.restore.scoring`, kept for one release (0.2.x): restoring and
scoring images is not training. The same module object under both names."""
import sys
import warnings

from optiqa.restore import scoring as _module

warnings.warn("optiqa.train.evaluate is now optiqa.restore.scoring; the old name goes in 0.3",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
