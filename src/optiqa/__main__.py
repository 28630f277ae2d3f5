"""``python -m optiqa``: the ``optiqa`` command."""
import sys

from optiqa.cli import main

sys.exit(main())
