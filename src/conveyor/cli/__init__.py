"""The ``conveyor`` command line: ``demo``, ``worker``, ``ui``, ``runs``, ``diagram``,
``migrate``."""

from ._app import cli as cli
from ._app import main as main

__all__ = ("cli", "main")
