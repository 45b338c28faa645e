"""asyncpg's exceptions as conveyor's: ``AdapterUnavailable`` when the server cannot be
reached (worth a retry on a new connection), ``AdapterError`` for everything else."""

from __future__ import annotations

import asyncpg

from ..._errors import AdapterError, AdapterUnavailable
from ..._urls import scrub

__all__ = ["is_connection_error", "translate", "translate_connecting"]

# SQLSTATE classes that mean "this connection (or the server) is gone", not "this query is bad".
_UNAVAILABLE_STATES = (
    "08",  # connection exception
    "57P01",  # admin_shutdown (pg_terminate_backend, fast shutdown)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up, shutting down, recovery)
    "53300",  # too_many_connections
)


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection or the server failed (not the statement)."""
    if isinstance(exc, AdapterUnavailable):
        return True
    if isinstance(
        exc,
        (
            OSError,
            TimeoutError,
            asyncpg.ConnectionDoesNotExistError,
            asyncpg.PostgresConnectionError,
            # A connection the server closed while it was idle: asyncpg notices on next use.
            asyncpg.InternalClientError,
        ),
    ):
        return True
    if isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return any(state.startswith(s) for s in _UNAVAILABLE_STATES)
    return False


def translate(exc: BaseException, what: str) -> AdapterError:
    """The conveyor error for a driver failure while doing ``what`` (chain it as the cause)."""
    if isinstance(exc, AdapterError):
        return exc
    if is_connection_error(exc):
        return AdapterUnavailable(f"PostgreSQL unavailable while {what}: {exc!r}")
    return AdapterError(f"PostgreSQL failed while {what}: {exc!r}")


def translate_connecting(exc: BaseException, dsn: str) -> tuple[AdapterError, BaseException | None]:
    """The conveyor error for a failed connection to ``dsn``, and the cause to chain.

    The server's and asyncpg's messages do not quote the password, but a malformed URL
    can put it where the driver quotes it (``postgresql://app:s3cret/db``, the ``@host``
    forgotten, has the "port" ``s3cret``): then the message is scrubbed and the driver's
    exception is not chained, so no traceback shows it either.
    """
    error = translate(exc, "connecting")
    message = str(error)
    shown = scrub(message, dsn)
    if shown == message and scrub(repr(exc), dsn) == repr(exc):
        return error, exc
    return type(error)(shown), None
