"""Two ``conveyor worker`` processes on PostgreSQL: a SIGTERM hands the roles over at once.

The leases last 120 s here, so a worker that left without releasing its roles would hold
up the other one for two minutes; the test bounds everything at 30 s.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from _pg_support import migrated, pg_url

import conveyor
from cli._worker_app import Status, builder
from cli._workers import Worker

__all__ = ["pg_url"]

pytestmark = [pytest.mark.postgres, pytest.mark.processes]

SCHEMA = "worker_drain"
BOUND = 30.0


async def test_a_drained_worker_hands_its_roles_over_before_any_lease_expires(
    pg_url: str, tmp_path: Path
) -> None:
    await migrated(pg_url, SCHEMA)
    url = f"{pg_url}?schema={SCHEMA}&role_ttl=120&role_renew=0.2&role_grace=0.5"
    (tmp_path / "gate").touch()  # the charge step does not block here
    first = await Worker.start(tmp_path, url)
    second = await Worker.start(tmp_path, url)
    try:
        async with conveyor.connect(url) as backend:
            wf = builder.build(backend.streamer, backend.record_store, backend.role_scheduler)
            async with wf.client() as client:
                # Given both workers are up and share the work
                rid = await client.trigger("before")
                async with asyncio.timeout(BOUND):
                    await client.wait("before", rid, Status.SHIPPED)
                # When the first one is drained by SIGTERM
                first.signal(signal.SIGTERM)
                assert await first.exit_code() == 0
                # Then the second takes every role over at once: new runs complete well
                # before the first worker's leases (120 s) could have expired
                rids = [await client.trigger(f"after-{i}") for i in range(20)]
                async with asyncio.timeout(BOUND):
                    for i, r in enumerate(rids):
                        await client.wait(f"after-{i}", r, Status.SHIPPED)
    finally:
        await first.kill()
        await second.kill()
    lines = (tmp_path / "journal").read_text().splitlines()
    assert len(lines) == 21  # each run charged exactly once
    assert {line.split()[1] for line in lines[1:]} == {str(second.process.pid)}
