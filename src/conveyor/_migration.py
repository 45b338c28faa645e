"""What creating or upgrading a backend's schema did (``conveyor.migrate``).

A backend's migrator (registered with ``register_backend``) returns a ``MigrationReport``;
``conveyor migrate --store URL`` prints it. A migrator that returns anything else (an
older third-party one returns ``None``) reports nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AppliedMigration", "MigrationReport"]


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    """One schema version a migration applied: its number (from 1) and its name."""

    version: int
    name: str


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What one migration of a backend's schema did.

    ``created``: there was no schema before (``from_version`` is 0). ``from_version`` and
    ``to_version`` are the schema's versions before and after; ``applied`` the versions
    applied, oldest first (empty when the schema was up to date, and then the two
    versions are equal). ``tables`` names the tables it created, as the database names
    them, in creation order; ``schema`` the database schema that holds them (PostgreSQL's
    ``schema`` option; empty where there is none, as in SQLite).
    """

    created: bool
    from_version: int
    to_version: int
    applied: tuple[AppliedMigration, ...] = ()
    tables: tuple[str, ...] = ()
    schema: str = ""

    @property
    def changed(self) -> bool:
        """Whether any version was applied."""
        return bool(self.applied)
