"""`python -m gossipgan` is the `gossipgan` command."""

import sys

from gossipgan.cli import main

sys.exit(main())
