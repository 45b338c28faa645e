"""Worker processes for the SQLite multi-process tests (run as a script, one mode each).

    python _sqlite_workers.py append  PATH TOPIC PROC COUNT
    python _sqlite_workers.py roles   PATH ROLES TTL POLL LOG
    python _sqlite_workers.py writers PATH PROC SECONDS

Each prints ``ready`` when it has started, and a line of JSON when it has finished
(``roles`` runs until its stdin closes or it is killed). Any exception ends the process
with a traceback and a non-zero exit code, which the tests check.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta

from conveyor import RunState, VersionConflict, WorkflowInProgress
from conveyor.abc import OutgoingEvent, RecordWrite
from conveyor.adapters.sqlite import (
    SQLiteEventStreamer,
    SQLiteRecordStore,
    SQLiteRoleScheduler,
    SQLiteTimeoutStore,
)
from conveyor.adaptertest import dummy_record, insert, update


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


async def append(path: str, topic: str, proc: str, count: int) -> None:
    """Append ``count`` events numbered 0.. to ``topic``, in batches of 1 to 5."""
    streamer = await SQLiteEventStreamer.open(path)
    sender = await streamer.new_sender(topic)
    _say("ready")
    seq = 0
    while seq < count:
        size = min(count - seq, random.randint(1, 5))
        batch = [
            OutgoingEvent(f"{proc}-{seq + i}", 1, {"proc": proc, "seq": str(seq + i)})
            for i in range(size)
        ]
        if size == 1:
            await sender.send(batch[0].foreign_id, 1, batch[0].headers)
        else:
            await sender.send_many(batch)
        seq += size
        if random.random() < 0.3:
            await asyncio.sleep(0)
    await streamer.close()
    _say(json.dumps({"sent": count}))


async def roles(path: str, count: int, ttl: float, poll: float, log: str) -> None:
    """Hold every one of ``count`` roles whenever granted; log acquisitions and losses."""
    scheduler = await SQLiteRoleScheduler.open(path, lease_ttl=ttl, poll_interval=poll)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pid = os.getpid()

    def note(role: str, what: str) -> None:
        os.write(fd, f"{time.monotonic_ns()} {pid} {role} {what}\n".encode())

    async def keep(role: str) -> None:
        while True:
            async with scheduler.hold(role) as lease:
                note(role, "acquire")
                try:
                    await lease.wait_lost()
                finally:  # lost, or cancelled at the end: either way no longer held
                    note(role, "lost")

    tasks = [asyncio.create_task(keep(f"role-{i:02d}")) for i in range(count)]
    _say(f"ready {scheduler.member_id}")
    await _stdin_closed()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await scheduler.close()
    os.close(fd)
    _say(json.dumps({"held": scheduler.held_roles()}))


async def writers(path: str, proc: str, seconds: float) -> None:
    """Contend with other processes: runs of shared foreign IDs, timeouts, events."""
    store = await SQLiteRecordStore.open(path)
    timeouts = await SQLiteTimeoutStore.open(path)
    streamer = await SQLiteEventStreamer.open(path)
    sender = await streamer.new_sender("contended")
    receiver = await streamer.new_receiver("contended", f"reader-{proc}")
    _say("ready")
    stats = {"started": 0, "in_progress": 0, "completed": 0, "conflicts": 0, "acked": 0}
    deadline = time.monotonic() + seconds
    now = datetime.now(UTC)
    while time.monotonic() < deadline:
        fid = f"fid-{random.randrange(20)}"
        record = dummy_record(foreign_id=fid)
        try:
            await store.store(insert(record))
            stats["started"] += 1
        except WorkflowInProgress:
            stats["in_progress"] += 1
            continue
        finished = update(record, run_state=RunState.COMPLETED)
        outcomes = await store.store_many(
            [finished, RecordWrite(finished.record, finished.outbox, expected_version=9)]
        )
        assert outcomes[0] is None, outcomes
        assert isinstance(outcomes[1], VersionConflict), outcomes
        stats["completed"] += 1
        stats["conflicts"] += 1
        timeout_id = await timeouts.create(
            "wf", fid, record.run_id, 1, now + timedelta(seconds=1), created_at=now
        )
        await timeouts.complete(timeout_id)
        await sender.send_many([OutgoingEvent(record.run_id, 1, {"proc": proc})] * 3)
        events = await receiver.recv(10)
        for event in events:
            await receiver.ack(event)
        stats["acked"] += len(events)
    await receiver.close()
    await streamer.close()
    await timeouts.close()
    await store.close()
    _say(json.dumps(stats))


def main() -> None:
    mode, *args = sys.argv[1:]
    if mode == "append":
        asyncio.run(append(args[0], args[1], args[2], int(args[3])))
    elif mode == "roles":
        asyncio.run(roles(args[0], int(args[1]), float(args[2]), float(args[3]), args[4]))
    elif mode == "writers":
        asyncio.run(writers(args[0], args[1], float(args[2])))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
