"""``python -m conveyor``: the command line (as the ``conveyor`` script)."""

from .cli import main

main()
