"""``python -m pierhead``: the ``pierhead`` command."""

import sys

from ._cli import main

sys.exit(main())
