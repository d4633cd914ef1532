"""``python -m stepml.cli``: the ``stepml`` command."""

from stepml.cli.commands import main

main()
