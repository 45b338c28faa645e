"""Key names and value encodings of the Redis record and timeout stores.

Every key is under the installation's ``key_prefix`` (``P`` below). Names taken from the
user (workflow names, run IDs, processes) are percent-escaped in key names (``part``), so
they hold no ``:`` and no name reaches into another's keys; inside values and sorted-set
members they are kept as they are (binary-safe).

Records (``RecordKeys``):

- ``P:run:<run>`` a hash per run: the record's fields (``FIELDS``) and ``seq`` (its
  insertion number), ``lf``/``lfv``/``lfa`` (its latest failure) and ``dk`` (the due set
  it is in);
- ``P:seq:runs`` the insertion counter;
- ``P:active:<wf>`` a hash: foreign ID -> run ID of its active run;
- ``P:latest:<wf>`` a hash: foreign ID -> ``<created_us> <run ID>`` of its newest run;
- ``P:hist:<run>`` a list of history entries (JSON), one per applied write;
- ``P:fail:<run>`` a hash: ``<version>:<attempt>`` (zero-padded) -> the failure without
  its message (JSON); ``P:failmsg:<run>`` the messages (emptied by deleting the hash);
- ``P:due:<wf>:<process>`` a sorted set: run IDs whose latest failure, made by the
  process, is still at the run's version, by ``next_attempt_at`` (microseconds);
- ``P:outbox:<wf>`` a stream of the workflow's outbox events (fields ``i`` the outbox
  ID, ``r`` run ID, ``t`` type, ``h`` headers JSON, ``c`` created_at microseconds) and
  ``P:outbox:ids`` a hash: outbox ID -> ``<entry ID> <stream key>``;
- indexes, sorted sets of score 0 read by lexicographic ranges (``ZRANGEBYLEX``), global
  under ``P:ix:`` and per workflow under ``P:wf:<wf>:``: ``time``, ``status:<n>`` and
  ``state:<n>`` of members ``<ts><run ID>``; ``fid`` of ``<foreign ID>\\0<ts><run ID>``;
  ``created`` of ``<ts><seq><run ID>`` (``list``'s order); and ``P:ix:run`` of
  ``<run ID>\\0<ts>``. ``<ts>`` is ``created_at`` as 18 decimal digits (microseconds
  since 0001-01-01), ``<seq>`` 16 digits: byte order is creation order;
- ``P:def:<wf>`` a list of the workflow's definitions (``<hash> <at_us> <document>``)
  and ``P:defs`` a sorted set of the workflow names that have one;
- ``P:event-location`` the pinned event location.

Timeouts (``TimeoutKeys``): ``P:timeout:<id>`` a hash per timeout, ``P:timeouts:seq`` the
ID counter, ``P:timeouts:wf:<wf>`` (IDs by ID) and ``P:timeouts:due:<wf>:<status>`` (IDs
by expiry, microseconds) sorted sets of the uncompleted ones, ``P:timeouts:key:<wf>`` a
hash of the idempotency keys (``<status>:<version>:<index>:<run ID>`` -> ID) and
``P:timeouts:ins:<wf>`` a stream of one entry, appended at each create, that waiters
block on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Final
from urllib.parse import quote

from ..._record import Meta
from .._listing import from_us, to_us
from .._rows import DecodedRow, decode_record

__all__ = [
    "FIELDS",
    "RecordKeys",
    "TS_WIDTH",
    "TimeoutKeys",
    "decode_run",
    "encode_reached",
    "part",
    "timestamp",
    "timestamp_of",
    "timestamp_us",
]

TS_WIDTH: Final = 18
_TS_OFFSET: Final = 62_135_596_800_000_000
"""Microseconds from 0001-01-01 to the epoch: every ``datetime`` gives a positive ``ts``."""

FIELDS: Final = (
    "workflow_name",
    "foreign_id",
    "run_id",
    "run_state",
    "status",
    "object",
    "created_at",
    "updated_at",
    "version",
    "run_state_reason",
    "status_description",
    "trace_origin",
    "reached",
)
"""The record fields of a run's hash, in the order the stores read them."""


_TEXT: Final = frozenset(
    {
        "workflow_name",
        "foreign_id",
        "run_id",
        "run_state_reason",
        "status_description",
        "trace_origin",
    }
)
_NUMBERS: Final = frozenset({"run_state", "status", "version"})


def part(name: str) -> str:
    """A user's name as a key part: percent-escaped, no ``:``."""
    if _UNESCAPED(name):  # the common case (a UUID, a plain name), as quote leaves it
        return name
    return quote(name, safe="")


_UNESCAPED: Final = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch
"""Whether ``quote(name, safe="")`` leaves ``name`` as it is (these are its unreserved
characters): matched in half the time ``quote`` takes."""


def timestamp(moment: datetime) -> bytes:
    """``moment`` as the fixed-width ``<ts>`` of index members (byte order = time order)."""
    return timestamp_us(to_us(moment))


def timestamp_us(us: int) -> bytes:
    """``timestamp`` of microseconds since the epoch."""
    return b"%018d" % (us + _TS_OFFSET)


def timestamp_of(ts: bytes) -> int:
    """The microseconds since the epoch of a ``<ts>``."""
    return int(ts) - _TS_OFFSET


class RecordKeys:
    """The record store's key names under one prefix (see the module docstring)."""

    __slots__ = ("defs", "ix", "location", "outbox_ids", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix: str = prefix + ":"
        self.ix: str = self.prefix + "ix:"
        self.outbox_ids: str = self.prefix + "outbox:ids"
        self.defs: str = self.prefix + "defs"
        self.location: str = self.prefix + "event-location"

    def run(self, run_id: str) -> str:
        return f"{self.prefix}run:{part(run_id)}"

    def latest(self, workflow_name: str) -> str:
        return f"{self.prefix}latest:{part(workflow_name)}"

    def history(self, run_id: str) -> str:
        return f"{self.prefix}hist:{part(run_id)}"

    def failures(self, run_id: str) -> str:
        return f"{self.prefix}fail:{part(run_id)}"

    def messages(self, run_id: str) -> str:
        return f"{self.prefix}failmsg:{part(run_id)}"

    def due(self, workflow_name: str, process: str) -> str:
        return f"{self.prefix}due:{part(workflow_name)}:{part(process)}"

    def outbox(self, workflow_name: str) -> str:
        return f"{self.prefix}outbox:{part(workflow_name)}"

    def index(self, workflow_name: str, name: str) -> str:
        """The index ``name`` (``time``, ``fid``, ``status:<n>`` ...) of one workflow, or
        the global one for the empty workflow name."""
        if not workflow_name:
            return self.ix + name
        return f"{self.prefix}wf:{part(workflow_name)}:{name}"

    def definitions(self, workflow_name: str) -> str:
        return f"{self.prefix}def:{part(workflow_name)}"


class TimeoutKeys:
    """The timeout store's key names under one prefix (see the module docstring)."""

    __slots__ = ("prefix", "sequence")

    def __init__(self, prefix: str) -> None:
        self.prefix: str = prefix + ":"
        self.sequence: str = self.prefix + "timeouts:seq"

    def timeout(self, id: int) -> str:
        return f"{self.prefix}timeout:{id}"

    def workflow(self, workflow_name: str) -> str:
        return f"{self.prefix}timeouts:wf:{part(workflow_name)}"

    def due(self, workflow_name: str, status: int) -> str:
        return f"{self.prefix}timeouts:due:{part(workflow_name)}:{int(status)}"

    def idempotency(self, workflow_name: str) -> str:
        return f"{self.prefix}timeouts:key:{part(workflow_name)}"

    def inserts(self, workflow_name: str) -> str:
        return f"{self.prefix}timeouts:ins:{part(workflow_name)}"


def encode_reached(meta: Meta) -> str:
    """``meta.reached`` as stored: the statuses, comma-separated."""
    return ",".join(str(int(s)) for s in meta.reached)


def _statuses(raw: object) -> tuple[int, ...]:
    if not isinstance(raw, bytes):
        raise TypeError("reached is not stored")
    return tuple(int(s) for s in raw.split(b",") if s)


def _moment(raw: object) -> datetime:
    if not isinstance(raw, bytes):
        raise TypeError("a time is not stored")
    return from_us(int(raw))


def _value(name: str, raw: bytes | None) -> object:
    """One stored field as ``decode_record`` reads it (left as stored if it does not
    decode, so that the stand-in says what is wrong)."""
    if raw is None:
        return None
    if name in _TEXT:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
    if name in _NUMBERS:
        try:
            return int(raw)
        except ValueError:
            return raw
    return raw


def decode_run(values: Sequence[bytes | None]) -> DecodedRow | None:
    """A run's hash as read by ``HMGET`` of ``FIELDS``: its record (a stand-in if a field
    does not decode), or ``None`` if there is no such run."""
    if all(v is None for v in values):
        return None
    row = {name: _value(name, raw) for name, raw in zip(FIELDS, values, strict=True)}
    return decode_record(row, timestamp=_moment, statuses=_statuses)
