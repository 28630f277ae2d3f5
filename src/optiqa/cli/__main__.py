"""``python -m optiqa.cli``: the ``optiqa`` command."""
import sys

from optiqa.cli import main

sys.exit(main())
