"""Markers: what a step, callback or timeout function returns instead of a status.

The set is closed: ``Marker`` is the union of the four final classes below (public in
``conveyor``), so a ``match`` over them is exhaustive and mypy rejects anything else. Build
them through the run (``run.skip()``, ``run.pause(reason)``, ``run.cancel(reason)``,
``run.save_and_repeat()``); the engine makes the write after the function returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias, final

__all__ = ["Cancel", "Marker", "Pause", "SaveAndRepeat", "Skip"]


@final
@dataclass(frozen=True, slots=True)
class Skip:
    """Do not move the run and write nothing (the event is acknowledged)."""


@final
@dataclass(frozen=True, slots=True)
class Pause:
    """Pause the run, keeping the function's changes to its object."""

    reason: str = ""


@final
@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel the run, keeping the function's changes to its object."""

    reason: str = ""


@final
@dataclass(frozen=True, slots=True)
class SaveAndRepeat:
    """Save the object and run the same step again on the new version."""


Marker: TypeAlias = Skip | Pause | Cancel | SaveAndRepeat
"""Every marker: returned by ``Run.skip``, ``Run.pause``, ``Run.cancel`` and
``Run.save_and_repeat``."""

SKIP = Skip()
SAVE_AND_REPEAT = SaveAndRepeat()
