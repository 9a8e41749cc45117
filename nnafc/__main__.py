"""`python -m nnafc ...`: the same as the `nnafc` command."""

import sys

from nnafc.cli import main

sys.exit(main())
