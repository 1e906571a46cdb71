"""`python -m gossipgan` is the `gossipgan` command."""

from gossipgan.cli import entry

entry()
