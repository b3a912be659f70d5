"""``python -m sandkasten_server.cli``: the ``sandkasten`` command."""

import sys

from . import main

sys.exit(main())
