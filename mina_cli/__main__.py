"""`python -m mina_cli` is the `mina` command."""

from mina_cli.main import entry

entry()
