"""``python -m lmforge_monitor``: the same as ``lmforge app monitor``."""

import sys

from lmforge_monitor.cli import main

sys.exit(main())
