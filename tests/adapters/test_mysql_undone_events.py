"""The MySQL event log after a server crash undid events that readers here had seen.

MariaDB makes a commit visible before it is durable: after a crash, recovery may undo
commits that readers had already read, and the topic's ID counter goes back with them, so
the restarted server gives the same IDs to new events. Here the crash is simulated, with
no server killed: the events past ``KEPT`` are deleted and the topic's counter set back
(what recovery does), every session of the test's two "processes" (two ``Database``s) is
killed (as the server's death ends them), and from then on the server reports another
start (``server_start`` patched), all while the event loop is blocked, so no connection
of the adapters sees one change and not the others. Then the other process sends new
events, which get the undone events' IDs: every receiver and tail of this process must
hand them out, and no cursor is ever written past what the server kept.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from _mysql_support import admin_sql, mysql_url, open_mysql

from conveyor.abc import Event, OutgoingEvent, TailBatch
from conveyor.adapters.mysql import (
    MySQLDatabase,
    MySQLEventReceiver,
    MySQLEventStreamer,
    _database,
)
from conveyor.adaptertest import new_name

__all__ = ["mysql_url"]

pytestmark = pytest.mark.mysql

PREFIX = "undone_"
KEPT = 5
"""The events the server keeps; 6 to 8 were seen here, then undone by the crash."""
WAIT = 10.0
"""Seconds any one read may take (a reader that skips the new events waits forever)."""


@pytest.fixture
async def here(mysql_url: str) -> AsyncIterator[MySQLDatabase]:
    """This process: cursors written only when a receiver closes (or after an hour)."""
    async with open_mysql(mysql_url, PREFIX, ack_flush_interval=3600.0) as db:
        yield db


@pytest.fixture
async def other(mysql_url: str) -> AsyncIterator[MySQLDatabase]:
    """Another process on the same tables: the sender."""
    async with open_mysql(mysql_url, PREFIX) as db:
        yield db


def _blocking(coro: Any) -> Any:
    """Run ``coro`` on an event loop of its own in another thread, blocking this one."""
    result: list[Any] = []

    def run() -> None:
        result.append(asyncio.run(coro))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert result, "the blocking call failed (see the thread's traceback)"
    return result[0]


async def _undo_and_kill(url: str, topic: str) -> None:
    """What the crash and the recovery do to the tables and the sessions."""
    await admin_sql(url, f"DELETE FROM {PREFIX}events WHERE topic = %s AND id > %s", (topic, KEPT))
    await admin_sql(url, f"UPDATE {PREFIX}topics SET last_id = %s WHERE topic = %s", (KEPT, topic))
    sessions = await admin_sql(
        url,
        "SELECT id FROM information_schema.PROCESSLIST "
        "WHERE db = DATABASE() AND id <> CONNECTION_ID()",
    )
    for (session,) in sessions:
        try:
            await admin_sql(url, f"KILL {int(session)}")
        except Exception as exc:  # gone meanwhile
            if "Unknown thread id" not in str(exc):
                raise


async def _stored(url: str, topic: str, name: str) -> int | None:
    rows = await admin_sql(
        url, f"SELECT position FROM {PREFIX}cursors WHERE topic = %s AND name = %s", (topic, name)
    )
    return int(rows[0][0]) if rows else None


async def _receive(receiver: MySQLEventReceiver, count: int) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(WAIT):
        while len(events) < count:
            events += await receiver.recv(count - len(events))
    return events


async def _send(streamer: MySQLEventStreamer, topic: str, ids: Sequence[str]) -> None:
    sender = await streamer.new_sender(topic)
    await sender.send_many([OutgoingEvent(fid, 1, {}) for fid in ids])


def _ids(events: Sequence[Event]) -> list[tuple[int, str]]:
    return [(e.id, e.foreign_id) for e in events]


async def test_readers_hand_out_new_events_that_took_the_ids_of_events_a_crash_undid(
    mysql_url: str,
    here: MySQLDatabase,
    other: MySQLDatabase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = new_name("undone")
    streamer, sender = MySQLEventStreamer(here), MySQLEventStreamer(other)
    try:
        # Given two receivers with their cursors stored at 5 and a tail from the start...
        tail = await streamer.tail(topic)
        await _send(sender, topic, [f"old-{i}" for i in range(1, KEPT + 1)])
        for name in ("kept-open", "closed-after"):
            receiver = await streamer.new_receiver(topic, name)
            for event in await _receive(receiver, KEPT):
                await receiver.ack(event)
            await receiver.close()
            assert await _stored(mysql_url, topic, name) == KEPT
        kept_open = await streamer.new_receiver(topic, "kept-open")
        closed_after = await streamer.new_receiver(topic, "closed-after")

        # ... that read and acknowledged events 6 to 8 (positions not written yet), and a
        # tail that handed them out...
        await _send(sender, topic, ["doomed-6", "doomed-7", "doomed-8"])
        doomed = await _receive(kept_open, 3)
        assert _ids(doomed) == [(6, "doomed-6"), (7, "doomed-7"), (8, "doomed-8")]
        for event in await _receive(closed_after, 3):
            await closed_after.ack(event)
        seen: list[Event] = []
        async with asyncio.timeout(WAIT):
            async for batch in tail:
                assert not batch.gap
                seen += batch.events
                if len(seen) >= 8:
                    break
        assert [e.id for e in seen] == list(range(1, 9))

        # When the server crashes and its recovery undoes events 6 to 8 (and the topic's
        # counter), and it starts again...
        async def restarted(cur: Any) -> object:
            return ("started again",)

        monkeypatch.setattr(_database, "server_start", restarted, raising=False)
        _blocking(_undo_and_kill(mysql_url, topic))

        # ... and the other process, its connections made again (a read retried on a
        # new one: its send would fail on a dead one, and be retried by its engine),
        # sends new events, which get IDs 6 to 9 ...
        tail_after: TailBatch = await asyncio.wait_for(anext(tail), WAIT)
        await closed_after.close()
        await other.fetch("reconnecting", "SELECT 1")
        await _send(sender, topic, ["new-6", "new-7", "new-8", "new-9"])
        new = [(6, "new-6"), (7, "new-7"), (8, "new-8"), (9, "new-9")]

        # Then the tail reports a gap (it handed out events that are gone) and goes on
        # with the new events
        assert tail_after.gap, tail_after
        assert [e.id for e in tail_after.events] == []
        async with asyncio.timeout(WAIT):
            batch = await anext(tail)
        assert not batch.gap
        assert _ids(batch.events) == new

        # ... the receiver closed after the crash left its cursor where the server kept it
        # (its unwritten position 8 is not written), and reopened it hands out the new ones
        assert await _stored(mysql_url, topic, "closed-after") == KEPT
        reopened = await streamer.new_receiver(topic, "closed-after")
        assert _ids(await _receive(reopened, 4)) == new

        # ... the receiver open throughout hands them out too, and acknowledgements of the
        # undone events it had handed out (same IDs, other events) do not count
        received = await _receive(kept_open, 4)
        assert _ids(received) == new
        for event in [*doomed, received[-1]]:
            await kept_open.ack(event)
        await kept_open.close()
        assert await _stored(mysql_url, topic, "kept-open") == KEPT
        for event in received:
            await reopened.ack(event)
        await reopened.close()
        assert await _stored(mysql_url, topic, "closed-after") == 9
        assert (here.restarts, other.restarts) == (1, 1)  # each saw the restart once
        await tail.close()

        # ... and closing the streamer (which writes what is left) writes no position
        # learned before the crash
        await streamer.close()
        assert await _stored(mysql_url, topic, "kept-open") == KEPT
    finally:
        await streamer.close()
        await sender.close()
