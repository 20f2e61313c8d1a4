"""``python -m sgpo.cli ...`` is ``sgpo ...``."""

import sys

from sgpo.cli import main

sys.exit(main())
