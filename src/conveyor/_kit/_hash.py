"""``fnv1a64``: a string hash that is the same in every process, machine and version.

Python's ``hash`` of a string changes with every interpreter start (``PYTHONHASHSEED``),
so anything two processes must agree on (which shard an event belongs to, which member
a role goes to, an advisory lock key) uses this instead.
"""

from __future__ import annotations

__all__ = ["fnv1a64"]

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF


def fnv1a64(text: str) -> int:
    """Unsigned 64-bit FNV-1a of the UTF-8 bytes: the same in every process and version."""
    h = _FNV_OFFSET
    for byte in text.encode():
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return h
