"""``python -m lmforge_recommend``: the same command as ``lmforge app recommend``."""

import sys

from lmforge_recommend.cli import main

sys.exit(main())
