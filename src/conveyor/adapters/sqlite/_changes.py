"""``Changes``: notices the rows other processes inserted, from the database thread.

``PRAGMA data_version`` changes with every commit of another connection (this process's
inline one included). After such a commit, if the new ``sqlite_sequence`` values account
exactly for the rows this process inserted meanwhile (``note_own``; ids are assigned one
writer at a time, so they form one unbroken range), nobody else inserted any: the local
writes already woke their waiters. Otherwise ``check`` reads which keys got rows past
the last seen ids, for ``Hub.remote``.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Final

__all__ = ["Change", "Changes"]

KINDS: Final = ("events", "outbox", "timeouts")
"""The AUTOINCREMENT tables that waiters watch."""

Change = tuple[tuple[str, str], int]
"""``((kind, name), last id)``: rows of ``kind`` for ``name`` up to that id exist."""

# NOT INDEXED: read only the new rows, by rowid (an index scan would read all).
_QUERIES: Final = {
    "events": "SELECT topic AS name, MAX(id) AS last FROM events NOT INDEXED WHERE id > ? "
    "GROUP BY topic",
    "outbox": "SELECT workflow_name AS name, MAX(seq) AS last FROM outbox NOT INDEXED "
    "WHERE seq > ? GROUP BY workflow_name",
    "timeouts": "SELECT workflow_name AS name, MAX(id) AS last FROM timeouts NOT INDEXED "
    "WHERE id > ? GROUP BY workflow_name",
}


class Changes:
    """Rows of each kind seen up to an id, and how many this process inserted since."""

    def __init__(self) -> None:
        self._data_version = -1
        self._seen: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._own: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._own_lock = threading.Lock()  # both connections' jobs report here

    def note_own(self, kind: str, count: int) -> None:
        """A write job (either connection) inserted ``count`` rows of ``kind``."""
        with self._own_lock:
            self._own[kind] += count

    def start(self, conn: sqlite3.Connection) -> None:
        """Take the current state as seen (on the thread's connection)."""
        conn.execute("BEGIN")
        try:
            for row in conn.execute("SELECT name, seq FROM sqlite_sequence"):
                if row["name"] in self._seen:
                    self._seen[row["name"]] = row["seq"]
            self._data_version = conn.execute("PRAGMA data_version").fetchone()["data_version"]
        finally:
            conn.execute("COMMIT")

    def check(self, conn: sqlite3.Connection) -> tuple[bool, list[Change]]:
        """Whether anyone committed since the last look, and what other processes
        inserted. Raises ``sqlite3.Error`` (the caller resets the connection)."""
        version = conn.execute("PRAGMA data_version").fetchone()["data_version"]
        if version == self._data_version:
            return False, []  # no commit by another connection
        self._data_version = version
        conn.execute("BEGIN")
        try:
            seqs = dict.fromkeys(KINDS, 0)
            for row in conn.execute("SELECT name, seq FROM sqlite_sequence"):
                if row["name"] in seqs:
                    seqs[row["name"]] = row["seq"]
            with self._own_lock:
                own, self._own = self._own, dict.fromkeys(KINDS, 0)
            foreign = [k for k in KINDS if seqs[k] - self._seen[k] != own[k]]
            changes = [
                ((kind, row["name"]), row["last"])
                for kind in foreign
                for row in conn.execute(_QUERIES[kind], (self._seen[kind],))
            ]
        finally:
            conn.execute("COMMIT")
        for kind in KINDS:
            self._seen[kind] = max(self._seen[kind], seqs[kind])
        return True, changes
