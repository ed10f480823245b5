"""`python -m weitiao COMMAND`: see weitiao.cli."""
from .cli import main

raise SystemExit(main())
