"""`python -m device_bridge`: see ``--help``."""
from .cli import main

raise SystemExit(main())
