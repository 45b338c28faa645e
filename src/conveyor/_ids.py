"""The foreign IDs every backend can store, checked in one place.

A foreign ID is any ``str`` (the empty one included) of at most ``MAX_FOREIGN_ID_BYTES``
bytes in UTF-8 that is valid Unicode and holds no NUL:

- 1,024 bytes fit every backend's indexes with room to spare (a PostgreSQL B-tree entry
  holds at most about 2,700 bytes, and the foreign ID shares it with the workflow name);
- PostgreSQL's ``text`` cannot hold U+0000;
- a lone surrogate (``"\\ud800"``) has no UTF-8 encoding, so no database can store it.

Every record store checks new runs and ``latest`` lookups with ``check_foreign_id`` (or
``invalid_foreign_id`` for one outcome of a batch), so each backend refuses the same IDs
with the same ``InvalidForeignID``. Both are pure and cheap: an ASCII ID costs a length
check and a scan for NUL.
"""

from __future__ import annotations

from typing import Final

from ._errors import InvalidForeignID

__all__ = ["MAX_FOREIGN_ID_BYTES", "check_foreign_id", "invalid_foreign_id"]

MAX_FOREIGN_ID_BYTES: Final = 1024
"""The longest foreign ID, in UTF-8 bytes."""


def invalid_foreign_id(foreign_id: object) -> InvalidForeignID | None:
    """The error ``check_foreign_id`` would raise for ``foreign_id``, else ``None``."""
    if not isinstance(foreign_id, str):
        return InvalidForeignID(foreign_id, f"must be a str, not {type(foreign_id).__name__}")
    if foreign_id.isascii():
        size = len(foreign_id)
    else:
        try:
            size = len(foreign_id.encode("utf-8"))
        except UnicodeEncodeError as exc:
            return InvalidForeignID(
                foreign_id,
                f"holds a lone surrogate (U+{ord(foreign_id[exc.start]):04X} at index "
                f"{exc.start}), which is not valid Unicode",
            )
    if size > MAX_FOREIGN_ID_BYTES:
        return InvalidForeignID(
            foreign_id,
            f"is {size:,} bytes long in UTF-8; at most {MAX_FOREIGN_ID_BYTES:,} are allowed",
        )
    if "\x00" in foreign_id:
        return InvalidForeignID(
            foreign_id, f"holds a NUL (U+0000 at index {foreign_id.index(chr(0))})"
        )
    return None


def check_foreign_id(foreign_id: str) -> str:
    """``foreign_id`` itself if every backend can store it; else raise ``InvalidForeignID``.

    The limits: a ``str`` of at most ``MAX_FOREIGN_ID_BYTES`` UTF-8 bytes, valid Unicode
    (no lone surrogates), without NUL. The empty string is allowed.
    """
    error = invalid_foreign_id(foreign_id)
    if error is not None:
        raise error
    return foreign_id
