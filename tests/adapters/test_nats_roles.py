"""The NATS key-value role scheduler: the conformance suite, takeover, spreading."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import pytest
from _nats_support import delete_prefix, nats_url, new_prefix, with_options

from conveyor.abc import RoleScheduler
from conveyor.adapters.nats import NatsRoleScheduler
from conveyor.adaptertest import RoleSchedulerSuite, SchedulerFactory

__all__ = ["nats_url"]

pytestmark = pytest.mark.nats

FAST_ROLES = {"role_ttl": 3, "role_renew": 0.25, "role_grace": 0.5}


class TestNatsRoleScheduler(RoleSchedulerSuite):
    @pytest.fixture
    async def make_schedulers(self, nats_url: str) -> AsyncIterator[SchedulerFactory]:
        prefix = new_prefix("r")
        url = with_options(nats_url, prefix=prefix, **FAST_ROLES)
        made: list[NatsRoleScheduler] = []

        async def make(n: int) -> Sequence[RoleScheduler]:
            made.extend(NatsRoleScheduler(url) for _ in range(n))  # a connection each
            return made[-n:]

        try:
            yield make
        finally:
            for scheduler in made:
                await scheduler.close()
            await delete_prefix(nats_url, prefix)


async def _dies(scheduler: NatsRoleScheduler) -> None:
    """The scheduler stops as a killed process would: no release, no goodbye."""
    task = scheduler._task
    assert task is not None
    scheduler._closed = True
    task.cancel()
    await asyncio.wait({task})
    await scheduler._conn.close()


async def test_a_dead_holders_role_passes_on_after_its_lease_and_never_overlaps(
    nats_url: str,
) -> None:
    # Given a role held by one scheduler and wanted by another (separate connections)
    prefix = new_prefix("r")
    url = with_options(nats_url, prefix=prefix, **FAST_ROLES)
    first, second = NatsRoleScheduler(url), NatsRoleScheduler(url)
    try:
        role = "leader"
        async with asyncio.timeout(5):
            lease = await first.hold(role).__aenter__()
        got: list[float] = []

        async def successor() -> None:
            async with second.hold(role):
                got.append(time.monotonic())

        waiting = asyncio.create_task(successor())

        # When the holder dies without releasing
        await _dies(first)

        # Then the other takes the role, but only once the dead holder's lease counted as
        # lost (its deadline passed) and within the TTL plus a renewal round or two
        async with asyncio.timeout(FAST_ROLES["role_ttl"] + 4 * FAST_ROLES["role_renew"] + 2):
            await waiting
        assert lease.lost()
        assert got[0] >= lease.deadline
    finally:
        await second.close()
        await delete_prefix(nats_url, prefix)


async def test_roles_spread_over_the_members_that_want_them(nats_url: str) -> None:
    # Given three schedulers each waiting for the same six roles
    prefix = new_prefix("r")
    url = with_options(nats_url, prefix=prefix, **FAST_ROLES)
    schedulers = [NatsRoleScheduler(url) for _ in range(3)]
    roles = [f"wf-1-consumer-{i}-of-6" for i in range(1, 7)]
    held: dict[str, int] = {}
    done = asyncio.Event()
    release = asyncio.Event()

    async def hold(who: int, role: str) -> None:
        while not release.is_set():
            async with schedulers[who].hold(role) as lease:
                held[role] = who
                if Counter(held.values()) == {0: 2, 1: 2, 2: 2}:
                    done.set()
                waits = {
                    asyncio.ensure_future(lease.wait_lost()),
                    asyncio.ensure_future(release.wait()),
                }
                _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for waiter in pending:
                    waiter.cancel()
                if held.get(role) == who:
                    del held[role]

    tasks = [asyncio.create_task(hold(w, r)) for w in range(3) for r in roles]
    try:
        # Then they settle at two roles each
        async with asyncio.timeout(10 * FAST_ROLES["role_ttl"]):
            await done.wait()
    finally:
        release.set()
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        for scheduler in schedulers:
            await scheduler.close()
        await delete_prefix(nats_url, prefix)
