"""`python -m ml_engine <command> ...`: see ml_engine.cli."""

import sys

from ml_engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
