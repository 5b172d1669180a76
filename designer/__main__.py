"""``python -m designer``: see :mod:`designer.cli`."""

import sys

from designer.cli import main

sys.exit(main())
