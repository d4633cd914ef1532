"""The ``stepml`` command (console script ``stepml = stepml.cli:main``; also ``python -m stepml.cli``).

:mod:`stepml.cli.commands` holds the commands, :mod:`stepml.cli.render` how they print (console,
tables, following a run), :mod:`stepml.cli.demo` the offline end-to-end demo and
:mod:`stepml.cli.browser` the web UI's launcher.
"""

from __future__ import annotations

from stepml.cli.commands import main

__all__ = ["main"]
