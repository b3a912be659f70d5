"""``python -m bench``: the whole suite (bench/all.py)."""

import sys

from bench.all import main

sys.exit(main())
