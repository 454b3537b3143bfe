"""``python -m dlmbench.regress ...`` (same as ``dlmbench regress ...``)."""

import sys

from dlmbench.regress.command import main

sys.exit(main())
