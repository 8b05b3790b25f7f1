"""``python -m mc_hull``: the same as the ``mc-hull`` command."""

import sys

from .cli import main

sys.exit(main())
