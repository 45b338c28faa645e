"""``Definitions``: registered workflow definitions (``KeepsDefinitions``) on MySQL/MariaDB.

``register`` reads the workflow's latest version and, unless its hash is the one given,
inserts the next version: a statement of its own, which the primary key (workflow,
version) refuses if a concurrent registration took that version first. Then it reads
again: the same document registered meanwhile is returned, a different one makes the
next attempt insert the version after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from ..._capabilities import DefinitionRecord
from ..._errors import AdapterError
from ._database import Database
from ._errors import DUPLICATE_KEY, error_code
from ._rows import from_db, name, to_db

__all__ = ["Definitions"]

_COLUMNS: Final = "workflow_name, version, hash, document, registered_at"
_ATTEMPTS: Final = 20


def _definition(row: Sequence[Any]) -> DefinitionRecord:
    workflow_name, version, hash, document, registered_at = row
    return DefinitionRecord(
        workflow_name=str(name(workflow_name)),
        version=int(version),
        hash=hash,
        document=document,
        registered_at=from_db(registered_at),
    )


class Definitions:
    """The statements of one installation's ``definitions`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db
        t = db.tables.definitions
        self._latest = (
            f"SELECT {_COLUMNS} FROM {t} WHERE workflow_name = %s ORDER BY version DESC LIMIT 1"
        )
        self._insert = f"INSERT INTO {t} ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s)"
        self._all = (
            f"SELECT {_COLUMNS} FROM {t} d WHERE version = "
            f"(SELECT MAX(version) FROM {t} WHERE workflow_name = d.workflow_name) "
            "ORDER BY workflow_name"
        )
        self._versions = f"SELECT {_COLUMNS} FROM {t} WHERE workflow_name = %s ORDER BY version"

    async def register(
        self, workflow_name: str, hash: str, document: str, at: datetime
    ) -> DefinitionRecord:
        for _ in range(_ATTEMPTS):
            rows = await self._db.fetch("reading a definition", self._latest, [workflow_name])
            latest = _definition(rows[0]) if rows else None
            if latest is not None and latest.hash == hash:
                return latest
            version = 1 if latest is None else latest.version + 1
            stored_at = to_db(at)
            try:
                await self._db.execute(
                    "registering a definition",
                    self._insert,
                    [workflow_name, version, hash, document, stored_at],
                )
            except AdapterError as exc:
                if exc.__cause__ is None or error_code(exc.__cause__) != DUPLICATE_KEY:
                    raise
                continue  # another registration took this version: look again
            return DefinitionRecord(workflow_name, version, hash, document, from_db(stored_at))
        raise AdapterError(
            f"registering the definition of {workflow_name!r} kept conflicting with "
            f"{_ATTEMPTS} other registrations"
        )

    async def definitions(self) -> Sequence[DefinitionRecord]:
        rows = await self._db.fetch("reading definitions", self._all)
        return [_definition(row) for row in rows]

    async def versions(self, workflow_name: str) -> Sequence[DefinitionRecord]:
        rows = await self._db.fetch("reading definitions", self._versions, [workflow_name])
        return [_definition(row) for row in rows]
