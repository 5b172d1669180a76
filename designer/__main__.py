"""``python -m designer``: see :mod:`designer.experiments.cli`."""

import sys

from designer.experiments.cli import main

sys.exit(main())
