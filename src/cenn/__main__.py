"""``python -m cenn`` runs the command line."""

import sys

from cenn.cli import main

sys.exit(main())
