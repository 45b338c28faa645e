"""What the built-in stores share to list runs (``ListsRuns``): the cursor, the prefix
range, the order key and an in-memory filter.

A cursor is the urlsafe base64 (unpadded) of the JSON array ``[created_at_us, run_id,
direction]``: the last run of the page (its ``created_at`` in integer microseconds since
the epoch, and its run ID) and ``"desc"`` or ``"asc"``. The next page starts strictly
after that key in that direction, so runs inserted or moved meanwhile never shift it.
Anything else, or a cursor of the other direction, is refused with ``AdapterError``.

Run IDs and foreign IDs are compared by code point (Python's ``str`` order, SQLite's
``BINARY`` collation, PostgreSQL's ``"C"`` collation of UTF-8): the three stores order
ties and match prefixes the same way. A prefix (of a foreign ID or of a run ID) matches
as the range ``>= prefix`` and ``< prefix_successor(prefix)`` (no ``LIKE``, so ``%``,
``_`` and ``\\`` are plain text). A run ID prefix no database can hold (``matches_nothing``)
matches no run (the SQL stores filter with a constant false instead of sending it).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from .._capabilities import RunQuery
from .._errors import AdapterError
from .._ids import check_foreign_id
from .._record import Record

__all__ = [
    "DEFAULT_LIMIT",
    "Key",
    "check_query",
    "decode_cursor",
    "encode_cursor",
    "from_us",
    "key_of",
    "matches",
    "matches_nothing",
    "page_limit",
    "prefix_successor",
    "to_us",
]

DEFAULT_LIMIT: Final = 50
"""The page size a non-positive ``limit`` stands for."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_MAX_CODE_POINT: Final = 0x10FFFF


@dataclass(frozen=True, slots=True)
class Key:
    """Where a page ended: the last run's creation time (microseconds) and run ID."""

    created_at_us: int
    run_id: str


def to_us(moment: datetime) -> int:
    """Integer microseconds since the epoch (a naive datetime is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def from_us(us: int) -> datetime:
    """The aware UTC datetime of ``to_us``' integer."""
    return _EPOCH + timedelta(microseconds=us)


def key_of(record: Record) -> Key:
    """The listing order key of ``record``."""
    return Key(to_us(record.created_at), record.run_id)


def page_limit(limit: int) -> int:
    """``limit``, or ``DEFAULT_LIMIT`` when it is not positive."""
    return limit if limit > 0 else DEFAULT_LIMIT


def _direction(newest_first: bool) -> str:
    return "desc" if newest_first else "asc"


def encode_cursor(key: Key, newest_first: bool) -> str:
    """The opaque cursor of the page that follows ``key`` (see the module docstring)."""
    raw = json.dumps(
        [key.created_at_us, key.run_id, _direction(newest_first)], separators=(",", ":")
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, newest_first: bool) -> Key:
    """The key a cursor of ``encode_cursor`` holds. Raises ``AdapterError`` for a cursor
    this module did not make, or one made for the other direction."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True))
    except (UnicodeError, ValueError, binascii.Error):
        raise AdapterError(f"not a run list cursor: {cursor[:80]!r}") from None
    if (
        not isinstance(value, list)
        or len(value) != 3
        or type(value[0]) is not int
        or type(value[1]) is not str
        or value[2] not in ("asc", "desc")
    ):
        raise AdapterError(f"not a run list cursor: {cursor[:80]!r}")
    if value[2] != _direction(newest_first):
        raise AdapterError(
            f"this cursor continues a list in {value[2]}ending order, not this one "
            f"({_direction(newest_first)}ending)"
        )
    try:
        from_us(value[0])
    except OverflowError:
        raise AdapterError(f"not a run list cursor: {cursor[:80]!r}") from None
    return Key(value[0], value[1])


def prefix_successor(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``, by code
    point; ``None`` when there is none (the prefix is only U+10FFFF characters)."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop()) + 1
        if 0xD800 <= last <= 0xDFFF:
            last = 0xE000  # surrogates are not stored: skip to the next scalar value
        if last <= _MAX_CODE_POINT:
            return "".join(chars) + chr(last)
    return None


def check_query(query: RunQuery) -> None:
    """Refuse a foreign ID or prefix no run can have (as ``latest`` does):
    ``InvalidForeignID``."""
    for text in (query.foreign_id, query.foreign_id_prefix):
        if text is not None:
            check_foreign_id(text)


def matches_nothing(query: RunQuery) -> bool:
    """Whether ``query``'s run ID prefix holds a NUL or a lone surrogate: no stored run ID
    starts with it (PostgreSQL's ``text`` cannot hold U+0000, and a lone surrogate has no
    UTF-8), so every store lists no run for it instead of failing in the driver."""
    prefix = query.run_id_prefix
    if not prefix:
        return False
    if "\x00" in prefix:
        return True
    try:
        prefix.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def matches(query: RunQuery, record: Record) -> bool:
    """Whether ``record`` passes every filter of ``query`` (the memory store's scan)."""
    if query.run_id_prefix and (
        matches_nothing(query) or not record.run_id.startswith(query.run_id_prefix)
    ):
        return False
    if query.workflow_name and record.workflow_name != query.workflow_name:
        return False
    if query.foreign_id is not None and record.foreign_id != query.foreign_id:
        return False
    if query.foreign_id_prefix and not record.foreign_id.startswith(query.foreign_id_prefix):
        return False
    if query.statuses and record.status not in query.statuses:
        return False
    if query.run_states and record.run_state not in query.run_states:
        return False
    created = to_us(record.created_at)
    if query.created_after is not None and created < to_us(query.created_after):
        return False
    return query.created_before is None or created < to_us(query.created_before)
