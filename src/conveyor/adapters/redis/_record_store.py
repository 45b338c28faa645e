"""``RedisRecordStore``: records, their outbox, failures, history and definitions in Redis.

Writes. Each ``store`` is one Lua script (``_record_scripts.WRITE``), and so is each
``store_many`` (one outcome per write): on the server, atomically, the compare-and-set on
the run's version, the one active run per workflow and foreign ID (``WorkflowInProgress``),
the record's hash, its index entries, its history entry and its outbox event. A foreign ID
no backend can store is refused before anything is sent (``InvalidForeignID``). A run's
workflow name, foreign ID, run ID and ``created_at`` are its identity: written when it is
inserted, never changed by an update.

Events. Built with ``events=streamer`` (what ``open_backend`` builds unless
``publish_events=false``), the write script appends each applied write's event to its
topic's stream itself, with the topic's counter and the entry format of the streamer's
send (``_entries``), exactly as the outbox relay would send it (``PublishesEvents``): no
outbox entry, no relay hop; the streamer is told the new IDs (its receivers count them
pending at once, and it trims those topics like the ones it sends to). Readers blocked
on the stream, in any process, are woken by the server as the script's ``XADD`` runs.

Outbox (without a streamer). One stream per workflow, oldest first;
``delete_outbox_events`` finds an event's entry by its outbox ID. ``wait_for_outbox``
blocks in ``XREAD ... STREAMS <outbox> 0`` on a connection of its own: it returns at once
while the outbox holds an event, and the moment a write of any process adds one (no
polling; a write in this process wakes it the same way, the server unblocks the read as
the script's ``XADD`` runs).

Reads. ``lookup`` and ``latest`` read a run's hash (a hash that no longer decodes raises
``DecodeError`` with a stand-in, and ``list`` returns the stand-in); ``list``,
``list_runs`` and ``count_runs`` read the sorted-set indexes (``_listing``). Failures and
history (``RecordsFailures``, ``KeepsHistory``), definitions (``KeepsDefinitions``) and
the event location (``PinsEventLocation``) are kept beside the runs; the key layout is in
``_record_keys``.

Durability is Redis's. With AOF (``appendonly yes``) and ``appendfsync everysec``, a
crash of the server (or of its machine) loses up to about one second of writes that were
acknowledged; ``appendfsync always`` loses none, at the cost of a disk sync per write.
With RDB snapshots only, everything written since the last snapshot is lost; without
persistence, a restart loses everything (runs, outbox, timeouts). A replica acknowledges
nothing by itself: a failover may lose the writes it had not received.
"""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from ..._capabilities import DefinitionRecord, Failure, HistoryEntry, RunPage, RunQuery
from ..._errors import (
    AdapterError,
    InvalidForeignID,
    RecordNotFound,
    VersionConflict,
    WorkflowError,
    WorkflowInProgress,
)
from ..._event import OutboxEvent
from ..._ids import check_foreign_id, invalid_foreign_id
from ..._protocols import Order, RecordFilter, RecordWrite
from ..._record import Record
from ..._runstate import RunState
from .._listing import from_us, to_us
from .._rows import HeaderDecoder
from ._client import RedisClient, open_client
from ._entries import compact_json, headers_field
from ._listing import Listing
from ._options import Keys
from ._record_keys import FIELDS, RecordKeys, decode_run, encode_reached, part, timestamp
from ._record_scripts import DELETE_OUTBOX, PIN, RECORD_FAILURE, REGISTER, WRITE, WRITE_WIDTH
from ._store_waits import Waiters
from ._streamer import RedisEventStreamer

__all__ = ["RedisRecordStore"]

_ACTIVE: Final = frozenset({RunState.INITIATED, RunState.RUNNING, RunState.PAUSED})
_DELETES_PER_SCRIPT: Final = 1000
_headers = HeaderDecoder(logging.getLogger("conveyor.adapters.redis"))


_json = compact_json


def _write_args(write: RecordWrite, events: Keys | None) -> list[Any]:
    """``WRITE``'s values of one write: its event to the outbox, or (``events``: the
    streamer's keys) onto its topic, encoded as the streamer's send encodes it."""
    record, outbox, meta = write.record, write.outbox, write.record.meta
    if events is None:
        headers = _json(dict(outbox.headers))
        stream = sequence = ""
    else:
        headers = headers_field(outbox.headers)
        topic = outbox.topic
        stream, sequence = events.stream(topic), events.sequence(topic)
    history = _json(
        {
            "v": meta.version,
            "s": record.status,
            "st": int(record.run_state),
            "r": meta.run_state_reason,
            "at": to_us(record.updated_at),
        }
    )
    return [
        record.run_id,
        part(record.run_id),
        record.workflow_name,
        part(record.workflow_name),
        record.foreign_id,
        write.expected_version,
        int(record.status),
        int(record.run_state),
        record.object,
        to_us(record.created_at),
        timestamp(record.created_at),
        to_us(record.updated_at),
        meta.version,
        meta.run_state_reason,
        meta.status_description,
        meta.trace_origin,
        encode_reached(meta),
        "1" if record.run_state in _ACTIVE else "0",
        "1" if record.run_state is RunState.DATA_DELETED else "0",
        outbox.id,
        int(outbox.type),
        headers,
        to_us(outbox.created_at),
        history,
        stream,
        sequence,
    ]


def _outcome(write: RecordWrite, reply: bytes | int) -> WorkflowError | None:
    if reply == b"ok" or isinstance(reply, int):  # an int: the ID of its published event
        return None
    record = write.record
    if reply == b"busy":
        return WorkflowInProgress(record.workflow_name, record.foreign_id)
    stored = reply[1:]
    return VersionConflict(record.run_id, write.expected_version, int(stored) if stored else None)


def _pairs(reply: Any) -> dict[bytes, bytes]:
    """A hash as ``HGETALL`` returns it (a dict, or a flat list)."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=True))


def _failure(raw: bytes, message: bytes | None) -> Failure:
    f = json.loads(raw)
    return Failure(
        workflow_name=f["w"],
        run_id=f["r"],
        version=f["v"],
        attempt=f["a"],
        process=f["p"],
        error_type=f["e"],
        message="" if message is None else message.decode("utf-8", "replace"),
        failed_at=from_us(f["at"]),
        next_attempt_at=None if f["n"] is None else from_us(f["n"]),
    )


def _failure_key(version: int, attempt: int) -> str:
    return f"{version:010d}:{attempt:010d}"


def _definition(workflow_name: str, version: int, entry: bytes) -> DefinitionRecord:
    hash, at, document = entry.split(b" ", 2)
    return DefinitionRecord(
        workflow_name, version, hash.decode(), document.decode(), from_us(int(at))
    )


class RedisRecordStore:
    """``RecordStore`` on Redis (see the module docstring), with ``RecordsFailures``,
    ``KeepsHistory``, ``ListsRuns``, ``KeepsDefinitions`` and ``PinsEventLocation``.

    ``client`` is shared (closing the store does not close it) unless ``owns_client``.
    Keys are under the client's ``key_prefix``. With ``events=streamer`` (a streamer on
    the same Redis database and key prefix) each write appends its event to the topic's
    stream itself (``PublishesEvents``) instead of keeping it in the outbox.
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        events: RedisEventStreamer | None = None,
        owns_client: bool = False,
    ) -> None:
        if events is not None and events._client.url != client.url:
            raise AdapterError(
                "a Redis record store publishes only to a streamer on its own Redis database"
            )
        self._client = client
        self._owns_client = owns_client
        self._events = events
        self._event_keys = None if events is None else events._keys
        self._keys = RecordKeys(client.options.key_prefix)
        self._listing = Listing(client, self._keys)
        self._waiters = Waiters(client)
        self._closed = False

    @classmethod
    def open(cls, url: str, **options: Any) -> RedisRecordStore:
        """A store on its own client for ``url`` (options as ``open_client``'s)."""
        return cls(open_client(url, **options), owns_client=True)

    def __repr__(self) -> str:
        return f"RedisRecordStore({self._client!r})"

    @property
    def publishes_to(self) -> RedisEventStreamer | None:
        """The streamer each write appends its event to (``events=``), else ``None``: the
        store keeps an outbox (``PublishesEvents``)."""
        return self._events

    # ------------------------------------------------------------------ writes

    async def store(self, write: RecordWrite) -> None:
        (outcome,) = await self.store_many([write])
        if outcome is not None:
            raise outcome

    async def store_many(self, writes: Sequence[RecordWrite]) -> Sequence[WorkflowError | None]:
        outcomes: list[WorkflowError | None] = [None] * len(writes)
        sent: list[int] = []
        args: list[Any] = [self._keys.prefix, 0]
        for i, write in enumerate(writes):
            refused: InvalidForeignID | None = None
            if write.expected_version == 0:
                refused = invalid_foreign_id(write.record.foreign_id)
            if refused is not None:
                outcomes[i] = refused
                continue
            sent.append(i)
            args.extend(_write_args(write, self._event_keys))
        if not sent:
            return outcomes
        args[1] = len(sent)
        assert len(args) == 2 + WRITE_WIDTH * len(sent)
        replies = await self._client.run("writing records", WRITE, (), args)
        for i, reply in zip(sent, replies, strict=True):
            outcomes[i] = _outcome(writes[i], reply)
            if isinstance(reply, int) and self._events is not None:
                self._events.appended(writes[i].outbox.topic, reply)
        return outcomes

    # ------------------------------------------------------------------ reads

    async def lookup(self, run_id: str) -> Record:
        values = await self._client.command(
            "looking up a record", "HMGET", self._keys.run(run_id), *FIELDS
        )
        row = decode_run(values)
        if row is None:
            raise RecordNotFound(f"record not found: run_id={run_id}")
        return row.get()

    async def latest(self, workflow_name: str, foreign_id: str) -> Record:
        check_foreign_id(foreign_id)
        newest = await self._client.command(
            "reading the latest record", "HGET", self._keys.latest(workflow_name), foreign_id
        )
        if newest is not None:
            run_id = bytes(newest).split(b" ", 1)[1].decode()
            (row,) = await self._listing.read([run_id])
            if row is not None:
                return row.get()
        raise RecordNotFound(
            f"record not found: workflow={workflow_name!r} foreign_id={foreign_id!r}"
        )

    async def list(
        self,
        workflow_name: str = "",
        *,
        offset: int = 0,
        limit: int = 25,
        order: Order = Order.ASC,
        filter: RecordFilter | None = None,
    ) -> Sequence[Record]:
        return await self._listing.list(workflow_name, offset, limit, order, filter)

    async def list_runs(
        self, query: RunQuery, *, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        """Up to ``limit`` runs of ``query`` after ``cursor``, read off the indexes."""
        return await self._listing.list_runs(query, limit, cursor)

    async def count_runs(self, query: RunQuery, *, cap: int = 10_000) -> int:
        """How many runs match ``query``, at most ``cap``."""
        return await self._listing.count_runs(query, cap)

    # ------------------------------------------------------------------ outbox

    async def list_outbox_events(self, workflow_name: str, limit: int) -> Sequence[OutboxEvent]:
        if limit <= 0:
            return []
        entries = await self._client.command(
            "listing outbox events",
            "XRANGE",
            self._keys.outbox(workflow_name),
            "-",
            "+",
            "COUNT",
            limit,
        )
        events: builtins.list[OutboxEvent] = []
        for entry_id, fields in entries:
            id = fields[b"i"].decode()
            run_id = fields[b"r"].decode()
            events.append(
                OutboxEvent(
                    id=id,
                    workflow_name=workflow_name,
                    run_id=run_id,
                    type=int(fields[b"t"]),
                    headers=_headers.decode(
                        fields.get(b"h"),
                        ("outbox", entry_id),
                        f"outbox event {id!r}",
                        workflow=workflow_name,
                        run_id=run_id,
                    ),
                    created_at=from_us(int(fields[b"c"])),
                )
            )
        return events

    async def delete_outbox_events(self, ids: Sequence[str]) -> None:
        unique = builtins.list(dict.fromkeys(ids))
        for i in range(0, len(unique), _DELETES_PER_SCRIPT):
            chunk = unique[i : i + _DELETES_PER_SCRIPT]
            await self._client.run(
                "deleting outbox events", DELETE_OUTBOX, (), [self._keys.outbox_ids, *chunk]
            )

    async def wait_for_outbox(self, workflow_name: str, timeout: float) -> None:
        await self._waiters.read(
            "waiting for the outbox", self._keys.outbox(workflow_name), "0", timeout
        )

    # ------------------------------------------------------------------ failures, history

    async def record_failure(self, failure: Failure) -> bool:
        """Keep ``failure`` if the run is still at its version (``RecordsFailures``)."""
        run_id = failure.run_id
        body = _json(
            {
                "w": failure.workflow_name,
                "r": run_id,
                "v": failure.version,
                "a": failure.attempt,
                "p": failure.process,
                "e": failure.error_type,
                "at": to_us(failure.failed_at),
                "n": None if failure.next_attempt_at is None else to_us(failure.next_attempt_at),
            }
        )
        due = "" if failure.next_attempt_at is None else to_us(failure.next_attempt_at)
        kept = await self._client.run(
            "recording a failure",
            RECORD_FAILURE,
            (
                self._keys.run(run_id),
                self._keys.failures(run_id),
                self._keys.messages(run_id),
                self._keys.due(failure.workflow_name, failure.process),
            ),
            (
                failure.version,
                failure.attempt,
                _failure_key(failure.version, failure.attempt),
                body,
                failure.message,
                due,
                run_id,
            ),
        )
        return bool(kept)

    async def failures(self, run_id: str, version: int | None = None) -> Sequence[Failure]:
        """The run's failures by version and attempt (only ``version``'s if given)."""
        kept, messages = await self._failure_hashes(run_id)
        return [
            _failure(kept[k], messages.get(k))
            for k in sorted(kept)
            if version is None or int(k.split(b":")[0]) == version
        ]

    async def _failure_hashes(self, run_id: str) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
        kept, messages = await self._client.pipeline(
            "reading failures",
            [
                ("HGETALL", self._keys.failures(run_id)),
                ("HGETALL", self._keys.messages(run_id)),
            ],
        )
        for reply in (kept, messages):
            if isinstance(reply, AdapterError):
                raise reply
        return _pairs(kept), _pairs(messages)

    async def retries_due(
        self, workflow_name: str, process: str, limit: int = 1000
    ) -> Sequence[Failure]:
        """The latest failure of each run ``process`` must retry, earliest due first."""
        if limit <= 0:
            return []
        members = await self._client.command(
            "listing retries", "ZRANGE", self._keys.due(workflow_name, process), 0, limit - 1
        )
        run_ids = [bytes(m).decode() for m in members]
        if not run_ids:
            return []
        latest = await self._client.pipeline(
            "listing retries", [("HGET", self._keys.run(r), "lf") for r in run_ids]
        )
        commands: list[tuple[str, ...]] = []
        found: list[str] = []
        for run_id, key in zip(run_ids, latest, strict=True):
            if isinstance(key, AdapterError):
                raise key
            if key is None:
                continue
            found.append(run_id)
            commands.append(("HGET", self._keys.failures(run_id), key.decode()))
            commands.append(("HGET", self._keys.messages(run_id), key.decode()))
        replies = await self._client.pipeline("listing retries", commands)
        out: list[Failure] = []
        for i in range(len(found)):
            raw, message = replies[2 * i], replies[2 * i + 1]
            for reply in (raw, message):
                if isinstance(reply, AdapterError):
                    raise reply
            if raw is not None:
                out.append(_failure(raw, message))
        return out

    async def history(self, run_id: str) -> Sequence[HistoryEntry]:
        """Every applied write of the run, oldest first, with its version's failures."""
        entries = await self._client.command(
            "reading history", "LRANGE", self._keys.history(run_id), 0, -1
        )
        if not entries:
            return []
        by_version: dict[int, list[Failure]] = {}
        for f in await self.failures(run_id):
            by_version.setdefault(f.version, []).append(f)
        out: list[HistoryEntry] = []
        for raw in entries:
            e = json.loads(raw)
            try:
                state = RunState(e["st"])
            except ValueError:
                state = RunState.UNKNOWN
            out.append(
                HistoryEntry(
                    version=e["v"],
                    status=e["s"],
                    run_state=state,
                    reason=e["r"],
                    at=from_us(e["at"]),
                    failures=tuple(by_version.get(e["v"], ())),
                )
            )
        return out

    # ------------------------------------------------------------------ definitions

    async def register_definition(
        self, workflow_name: str, hash: str, document: str, at: datetime
    ) -> DefinitionRecord:
        """Keep ``document`` as a new version unless the latest has ``hash``."""
        version, entry = await self._client.run(
            "registering a definition",
            REGISTER,
            (self._keys.definitions(workflow_name), self._keys.defs),
            (workflow_name, hash, to_us(at), document),
        )
        return _definition(workflow_name, int(version), entry)

    async def definitions(self) -> Sequence[DefinitionRecord]:
        """The latest definition of every workflow, by workflow name."""
        names = [
            bytes(n).decode()
            for n in await self._client.command(
                "listing definitions", "ZRANGE", self._keys.defs, 0, -1
            )
        ]
        commands: list[tuple[Any, ...]] = []
        for name in names:
            commands.append(("LLEN", self._keys.definitions(name)))
            commands.append(("LINDEX", self._keys.definitions(name), -1))
        replies = await self._client.pipeline("listing definitions", commands)
        out: list[DefinitionRecord] = []
        for i, name in enumerate(names):
            count, entry = replies[2 * i], replies[2 * i + 1]
            for reply in (count, entry):
                if isinstance(reply, AdapterError):
                    raise reply
            if entry is not None:
                out.append(_definition(name, int(count), entry))
        return out

    async def definition_versions(self, workflow_name: str) -> Sequence[DefinitionRecord]:
        """Every version of one workflow's definition, oldest first."""
        entries = await self._client.command(
            "listing definitions", "LRANGE", self._keys.definitions(workflow_name), 0, -1
        )
        return [_definition(workflow_name, i + 1, e) for i, e in enumerate(entries)]

    # ------------------------------------------------------------------ event location

    async def pin_event_location(self, location: str) -> str:
        """Record ``location`` unless one is recorded; return the recorded one."""
        pinned = await self._client.run(
            "pinning the event location", PIN, (self._keys.location,), (location,)
        )
        return bytes(pinned).decode()

    async def repin_event_location(self, location: str) -> None:
        """Record ``location`` whatever was recorded."""
        await self._client.command(
            "repinning the event location", "SET", self._keys.location, location
        )

    # ------------------------------------------------------------------ close

    async def close(self) -> None:
        """Close the store's blocking connections (and the client if it owns it).
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._waiters.close()
        if self._owns_client:
            await self._client.close()
