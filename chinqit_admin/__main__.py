"""``python -m chinqit_admin``: the same as the ``chinqit-admin`` command."""

import sys

from .cli import main

sys.exit(main())
