"""Old name of :mod:`optiqa.data.distortions`
(the IQA distortions of the built-in known-order set), kept for one release (0.2.x):
import ``optiqa.data.distortions``. The same module object under both names."""
import sys
import warnings

from optiqa.data import distortions as _module

warnings.warn("optiqa.data.degradations is now optiqa.data.distortions; the old name goes in 0.3",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
