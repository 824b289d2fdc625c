import sys

from lmforge_support.cli import main

sys.exit(main())
