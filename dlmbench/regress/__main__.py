"""``python -m dlmbench.regress ...`` (same as ``dlmbench regress ...``)."""

import sys

from .command import main

sys.exit(main())
