"""``python -m foleyspace`` runs the CLI."""

import sys

from foleyspace.cli import main

sys.exit(main())
