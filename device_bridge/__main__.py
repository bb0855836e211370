"""`python -m device_bridge`: the same as the `chinqit-bridge` command; see ``--help``."""

from .cli import main

raise SystemExit(main())
