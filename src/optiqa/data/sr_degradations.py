"""Old name of :mod:`optiqa.data.task_degradations`
(every task's degradations), kept for one release (0.2.x):
import ``optiqa.data.task_degradations``. The same module object under both names."""
import sys
import warnings

from optiqa.data import task_degradations as _module

warnings.warn("optiqa.data.sr_degradations is now optiqa.data.task_degradations; the old name goes in 0.3",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
