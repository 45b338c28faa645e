"""The role scheduler's statements on the ``roles`` and ``members`` tables, and their pruning.

Every time in them is the database's (``UTC_TIMESTAMP(6)``), never a process's clock. A
statement that takes a list of roles gets one ``%s`` per role (``marks``); the lists are
sorted by the caller, so rows are locked in one order everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._database import Database
from ._options import MySQLOptions, Tables

__all__ = ["NOW", "RoleSQL", "marks", "prune_roles"]

NOW = "UTC_TIMESTAMP(6)"


def _us(seconds: float) -> int:
    return int(seconds * 1_000_000)


def marks(values: Sequence[object]) -> str:
    """``%s, %s, ...``, one per value (``NULL`` for none: ``IN (NULL)`` matches nothing)."""
    return ", ".join(["%s"] * len(values)) if values else "NULL"


class RoleSQL:
    """The statements of one installation's role scheduler, for its TTL and grace."""

    __slots__ = ("_grace", "_t", "_ttl", "join", "leave", "release")

    def __init__(self, tables: Tables, ttl: float, grace: float) -> None:
        self._t = tables
        self._ttl = f"{NOW} + INTERVAL {_us(ttl)} MICROSECOND"
        self._grace = f"{NOW} - INTERVAL {_us(grace)} MICROSECOND"
        t, expiry = tables, self._ttl
        self.join = (
            f"INSERT INTO {t.members} (id, wanted, joined_at, expires_at) "
            f"VALUES (%s, %s, {NOW}, {expiry}) "
            f"ON DUPLICATE KEY UPDATE wanted = %s, expires_at = {expiry}"
        )
        """A member's first heartbeat: ``(id, wanted, wanted)``."""
        self.release = (
            f"UPDATE {t.roles} SET holder = NULL, expires_at = {NOW} "
            "WHERE role = %s AND holder = %s AND epoch = %s"
        )
        """Free one lease if it is still this one: ``(role, member, epoch)``."""
        self.leave = (
            f"DELETE FROM {t.members} WHERE id = %s",
            f"UPDATE {t.roles} SET holder = NULL, expires_at = {NOW} WHERE holder = %s",
        )
        """Leave the members, then free every lease: each ``(member,)``."""

    def heartbeat(self, held: Sequence[str]) -> str:
        """Renew the member's row and its leases in one statement, to one expiry:
        ``(*held, wanted, member)``. Changes no row when the member has none."""
        t, expiry = self._t, self._ttl
        return (
            f"UPDATE {t.members} m LEFT JOIN {t.roles} r "
            f"ON r.holder = m.id AND r.role IN ({marks(held)}) "
            f"SET m.wanted = %s, m.expires_at = {expiry}, r.expires_at = {expiry} "
            "WHERE m.id = %s"
        )

    def look(self, wanted: Sequence[str]) -> str:
        """The live members and the roles that matter: ``(member, *wanted)``.

        Rows ``(kind, name, value, flag, long_flag)``: ``'member'``, its ID, its wanted
        roles (JSON), whether it joined more than the grace ago; or ``'role'``, its name,
        its live holder (else NULL), whether it is free, whether it has been free for
        longer than the grace. Roles: those wanted here and every one held by anyone (the
        holders decide the assignment).
        """
        t, grace = self._t, self._grace
        return (
            f"SELECT 'member', id, wanted, joined_at < {grace}, 0 "
            f"FROM {t.members} WHERE expires_at > {NOW} AND id <> %s "
            "UNION ALL "
            f"SELECT 'role', role, CASE WHEN expires_at >= {NOW} THEN holder END, "
            f"expires_at < {NOW}, expires_at < {grace} "
            f"FROM {t.roles} WHERE role IN ({marks(wanted)}) "
            f"OR (holder IS NOT NULL AND expires_at >= {NOW})"
        )

    def create(self, roles: Sequence[str]) -> str:
        """Rows for roles that have none (free since ever): ``(*roles)``."""
        values = ", ".join(["(%s)"] * len(roles))
        table = self._t.roles
        return f"INSERT INTO {table} (role) VALUES {values} ON DUPLICATE KEY UPDATE role = role"

    def lock(self, roles: Sequence[str]) -> str:
        """In a transaction, lock the rows of ``roles``: ``(*roles)``. Rows ``(role,
        holder, free, free for longer than the grace, epoch)``."""
        return (
            f"SELECT role, holder, expires_at < {NOW}, expires_at < {self._grace}, epoch "
            f"FROM {self._t.roles} WHERE role IN ({marks(roles)}) ORDER BY role FOR UPDATE"
        )

    def take(self, roles: Sequence[str]) -> str:
        """Take the (locked) rows of ``roles``: ``(member, *roles)``."""
        return (
            f"UPDATE {self._t.roles} SET holder = %s, expires_at = {self._ttl}, "
            f"epoch = epoch + 1 WHERE role IN ({marks(roles)})"
        )


async def prune_roles(db: Database, options: MySQLOptions | None = None) -> int:
    """Delete members gone for longer than ``role_ttl`` and roles free (or expired) for
    longer than ``cursor_retention`` (a week by default: a role's ``epoch`` starts again
    at 0 once its row is gone, so rows are kept long); returns how many rows."""
    settings = options or db.options
    t = db.tables
    members = await db.execute(
        "pruning role members",
        f"DELETE FROM {t.members} WHERE expires_at < {NOW} - INTERVAL %s MICROSECOND",
        (_us(settings.role_ttl),),
    )
    roles = await db.execute(
        "pruning roles",
        f"DELETE FROM {t.roles} WHERE expires_at < {NOW} - INTERVAL %s MICROSECOND",
        (_us(settings.cursor_retention),),
    )
    return members + roles
