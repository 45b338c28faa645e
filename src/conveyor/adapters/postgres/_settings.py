"""``Settings``: the installation's settings on PostgreSQL, so far where its events go
(``PinsEventLocation``).

A pin is one statement: insert the row unless it exists, and on a conflict return the
recorded value (``ON CONFLICT DO UPDATE`` setting the value to itself). Unlike ``DO
NOTHING``, which returns no row when the conflicting row is not in the statement's
snapshot (a concurrent first pin that committed while this one waited), the update locks
the recorded row and returns it: of concurrent first pins one inserts, the others wait for
its commit and return its value.
"""

from __future__ import annotations

from ..._errors import AdapterError
from ._database import Database

__all__ = ["Settings"]

_EVENT_LOCATION = "event_location"


class Settings:
    """The statements of one installation's ``settings`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db
        t = db.tables.settings
        self._pin = (
            f"INSERT INTO {t} AS s (key, value) VALUES ($1, $2) "
            "ON CONFLICT (key) DO UPDATE SET value = s.value RETURNING value"
        )
        self._repin = (
            f"INSERT INTO {t} (key, value) VALUES ($1, $2) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )

    async def pin_event_location(self, location: str) -> str:
        rows = await self._db.write(
            "pinning the event location", self._pin, _EVENT_LOCATION, location
        )
        if not rows:  # pragma: no cover - an upsert with RETURNING returns its row
            raise AdapterError("pinning the event location returned no row")
        return str(rows[0]["value"])

    async def repin_event_location(self, location: str) -> None:
        await self._db.write("repinning the event location", self._repin, _EVENT_LOCATION, location)
