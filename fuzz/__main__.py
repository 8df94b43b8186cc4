"""``python -m fuzz`` is the same as the ``migfuzz`` console script."""

import sys

from fuzz.cli import main

sys.exit(main())
