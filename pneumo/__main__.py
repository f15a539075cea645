"""``python -m pneumo``: the command line."""

import sys

from pneumo.cli import main

sys.exit(main())
