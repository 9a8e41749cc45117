"""`python -m nnafc ...`: the same as the `nnafc` command."""

import sys

from nnafc.cli import main

if __name__ == "__main__":
    sys.exit(main())
