"""``Definitions``: registered workflow definitions (``KeepsDefinitions``) on PostgreSQL.

``register`` is one statement: insert the next version unless the latest one has the
hash, ``ON CONFLICT DO NOTHING`` on the primary key (workflow, version). Concurrent
registrations of one document try the same version; one inserts it, the others wait for
its commit, insert nothing and read it (the statement is retried after a conflict: a
different document registered meanwhile makes the next attempt insert the version after).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from ..._capabilities import DefinitionRecord
from ..._errors import AdapterError
from ._database import Database

__all__ = ["Definitions"]

_COLUMNS = "workflow_name, version, hash, document, registered_at"
_ATTEMPTS = 20


def _definition(row: asyncpg.Record) -> DefinitionRecord:
    return DefinitionRecord(
        workflow_name=row["workflow_name"],
        version=int(row["version"]),
        hash=row["hash"],
        document=row["document"],
        registered_at=row["registered_at"],
    )


class Definitions:
    """The statements of one installation's ``definitions`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db
        t = db.tables.definitions
        self._latest = (
            f"SELECT {_COLUMNS} FROM {t} WHERE workflow_name = $1 ORDER BY version DESC LIMIT 1"
        )
        self._register = f"""WITH latest AS (
    SELECT version, hash FROM {t} WHERE workflow_name = $1::text ORDER BY version DESC LIMIT 1
)
INSERT INTO {t} ({_COLUMNS})
SELECT $1::text, coalesce((SELECT version FROM latest), 0) + 1, $2::text, $3::text,
    $4::timestamptz
WHERE NOT EXISTS (SELECT 1 FROM latest WHERE hash = $2::text)
ON CONFLICT (workflow_name, version) DO NOTHING
RETURNING {_COLUMNS}"""
        self._all = (
            f"SELECT DISTINCT ON (workflow_name) {_COLUMNS} FROM {t} "
            "ORDER BY workflow_name, version DESC"
        )
        self._versions = f"SELECT {_COLUMNS} FROM {t} WHERE workflow_name = $1 ORDER BY version"

    async def register(
        self, workflow_name: str, hash: str, document: str, at: datetime
    ) -> DefinitionRecord:
        for _ in range(_ATTEMPTS):
            row = await self._db.fetchrow(
                "registering a definition", self._register, workflow_name, hash, document, at
            )
            if row is not None:
                return _definition(row)
            latest = await self._db.fetchrow("reading a definition", self._latest, workflow_name)
            if latest is not None and latest["hash"] == hash:
                return _definition(latest)
        raise AdapterError(
            f"registering the definition of {workflow_name!r} kept conflicting with "
            f"{_ATTEMPTS} other registrations"
        )

    async def definitions(self) -> Sequence[DefinitionRecord]:
        rows = await self._db.fetch("reading definitions", self._all)
        return [_definition(row) for row in rows]

    async def versions(self, workflow_name: str) -> Sequence[DefinitionRecord]:
        rows = await self._db.fetch("reading definitions", self._versions, workflow_name)
        return [_definition(row) for row in rows]
