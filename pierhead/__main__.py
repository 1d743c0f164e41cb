"""``python -m pierhead``: the ``pierhead`` command."""

import sys

from ._entry import main

sys.exit(main())
