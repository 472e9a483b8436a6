"""``python -m dctutor COMMAND`` — see :mod:`dctutor.cli` (the ``dctutor`` script calls main)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
