"""Old name of :mod:`optiqa.models.testing`, kept for one release (0.2.x); import
``optiqa.models.testing``. The same module object under both names."""
import sys
import warnings

from optiqa.models import testing as _testing

warnings.warn("optiqa.testing moved to optiqa.models.testing; the old name goes in 0.3",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _testing
