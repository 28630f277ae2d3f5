"""Old name of :mod:`optiqa.data.task_datasets`
(every task's training and test datasets), kept for one release (0.2.x):
import ``optiqa.data.task_datasets``. The same module object under both names."""
import sys
import warnings

from optiqa.data import task_datasets as _module

warnings.warn("optiqa.data.sr is now optiqa.data.task_datasets; the old name goes in 0.3",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
