"""The ``RoleScheduler`` conformance suite (luno-behaviour.md §2.3, plus hand-over cases)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import ClassVar

import pytest
import pytest_asyncio

from .._protocols import Lease, RoleScheduler
from ._fixtures import WAIT_TIMEOUT, new_name, within

__all__ = ["RoleSchedulerSuite", "SchedulerFactory"]

SchedulerFactory = Callable[[int], Awaitable[Sequence[RoleScheduler]]]
"""``await make(n)`` gives ``n`` schedulers that coordinate (as separate processes would)."""


class _Tracker:
    """Who holds the role right now, and the most holders ever seen at once."""

    def __init__(self) -> None:
        self.current: set[int] = set()
        self.acquired: list[int] = []
        self.most = 0
        self._changed = asyncio.Condition()

    async def enter(self, who: int) -> None:
        async with self._changed:
            self.current.add(who)
            self.acquired.append(who)
            self.most = max(self.most, len(self.current))
            self._changed.notify_all()

    async def exit(self, who: int) -> None:
        async with self._changed:
            self.current.discard(who)
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with self._changed:
            await self._changed.wait_for(predicate)

    async def wait_for_acquisitions(self, count: int) -> None:
        await self.wait_for(lambda: len(self.acquired) >= count)


class _Holder:
    """A task that holds ``role`` on ``scheduler`` until told to release it."""

    def __init__(self, who: int, scheduler: RoleScheduler, role: str, tracker: _Tracker) -> None:
        self.who = who
        self.lease: Lease | None = None
        self.acquired = asyncio.Event()
        self.release = asyncio.Event()
        self.scheduler = scheduler
        self._role = role
        self._tracker = tracker
        self.task = asyncio.create_task(self._run(), name=f"holder-{who}-{role}")

    async def _run(self) -> None:
        async with self.scheduler.hold(self._role) as lease:
            self.lease = lease
            await self._tracker.enter(self.who)
            self.acquired.set()
            try:
                await self.release.wait()
            finally:
                await self._tracker.exit(self.who)


class _Holders:
    """Starts holders for one case; on exit releases, cancels and awaits every one of them."""

    def __init__(self, timeout: float) -> None:
        self.tracker = _Tracker()
        self._timeout = timeout
        self._holders: list[_Holder] = []

    def start(self, scheduler: RoleScheduler, role: str) -> _Holder:
        holder = _Holder(len(self._holders), scheduler, role, self.tracker)
        self._holders.append(holder)
        return holder

    async def __aenter__(self) -> _Holders:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for holder in self._holders:
            holder.release.set()
        tasks = {h.task for h in self._holders}
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self._timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=self._timeout)
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a failing holder is reported by the case itself


async def _grant_once(scheduler: RoleScheduler) -> None:
    """Hold and release a role nobody else wants."""
    async with scheduler.hold(new_name("probe")):
        pass


async def _yield_to_others(times: int = 10) -> None:
    """Let other tasks run up to their next real wait (no time passes)."""
    for _ in range(times):
        await asyncio.sleep(0)


class RoleSchedulerSuite:
    """Conformance cases every ``RoleScheduler`` must pass.

    Subclass it in a test module as ``Test<YourScheduler>`` and override the
    ``make_schedulers`` fixture to yield a factory: ``await make(n)`` returns ``n``
    schedulers that coordinate with each other as separate processes would (for an
    in-process scheduler, the same instance ``n`` times)::

        class TestMyScheduler(RoleSchedulerSuite):
            @pytest.fixture
            async def make_schedulers(self) -> AsyncIterator[SchedulerFactory]:
                made: list[MyScheduler] = []

                async def make(n: int) -> Sequence[RoleScheduler]:
                    made.extend(MyScheduler(...) for _ in range(n))
                    return made[-n:]

                yield make
                for scheduler in made:
                    await scheduler.close()

    With pytest-asyncio's ``asyncio_mode = "auto"`` the override works as written; in
    strict mode decorate it with ``@pytest_asyncio.fixture``. ``wait_timeout`` bounds
    every wait for a role.
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    wait_timeout: ClassVar[float] = WAIT_TIMEOUT
    """Seconds a case waits to acquire a role (or for a cancelled wait to end)."""

    @pytest_asyncio.fixture
    async def make_schedulers(self) -> AsyncIterator[SchedulerFactory]:
        """A factory of coordinating schedulers for one case: override this fixture."""
        raise NotImplementedError("override the `make_schedulers` fixture to yield a factory")
        yield  # pragma: no cover

    async def test_lease_names_the_role_and_is_valid_only_while_held(
        self, make_schedulers: SchedulerFactory
    ) -> None:
        (scheduler,) = await make_schedulers(1)
        role = new_name("leader-cancelled-ctx")

        async with asyncio.timeout(self.wait_timeout), scheduler.hold(role) as lease:
            assert isinstance(lease, Lease)
            assert lease.role == role
            assert not lease.lost()

        assert lease.lost(), "a released lease must report lost()"
        await within(lease.wait_lost(), self.wait_timeout, "wait_lost() after release")

    async def test_a_released_role_can_be_held_again(
        self, make_schedulers: SchedulerFactory
    ) -> None:
        (scheduler,) = await make_schedulers(1)
        role = new_name("leader-again")

        for _ in range(3):
            async with asyncio.timeout(self.wait_timeout), scheduler.hold(role) as lease:
                assert not lease.lost()

    async def test_cancelling_the_holder_releases_the_role(
        self, make_schedulers: SchedulerFactory
    ) -> None:
        first, second = await make_schedulers(2)
        role = new_name("leader-cancelled-holder")
        async with _Holders(self.wait_timeout) as holders:
            holder = holders.start(first, role)
            await within(holder.acquired.wait(), self.wait_timeout, "the role")

            holder.task.cancel()
            done, _ = await asyncio.wait({holder.task}, timeout=self.wait_timeout)
            assert holder.task in done, "the holder did not stop when cancelled"

            successor = holders.start(second, role)
            await within(successor.acquired.wait(), self.wait_timeout, "the released role")
            assert holder.lease is not None
            assert holder.lease.lost()

    async def test_only_one_of_five_contending_schedulers_holds_a_role_at_a_time(
        self, make_schedulers: SchedulerFactory
    ) -> None:
        schedulers = await make_schedulers(5)
        role = new_name("leader-lock")
        async with _Holders(self.wait_timeout) as holders:
            tracker = holders.tracker
            contenders = [holders.start(s, role) for s in schedulers]

            for turn in range(1, len(contenders) + 1):
                await within(
                    tracker.wait_for_acquisitions(turn),
                    self.wait_timeout,
                    f"contender number {turn} to get the role",
                )
                # A known later event instead of a watch window: every waiting contender's
                # scheduler grants a fresh role after the hand-over, so each has looked at
                # the roles since (a poller polled); a second holder would be in by then.
                waiting = [c for c in contenders if not c.acquired.is_set()]
                await within(
                    asyncio.gather(*(_grant_once(c.scheduler) for c in waiting)),
                    self.wait_timeout,
                    "every waiting scheduler to grant a fresh role",
                )
                await _yield_to_others()
                assert tracker.most == 1, f"{tracker.most} schedulers held {role!r} at once"
                (current,) = tracker.current
                contenders[current].release.set()

            assert sorted(tracker.acquired) == list(range(len(contenders)))

    async def test_a_waiting_hold_is_cancellable(self, make_schedulers: SchedulerFactory) -> None:
        first, second = await make_schedulers(2)
        role = new_name("leader-releasing")
        async with _Holders(self.wait_timeout) as holders:
            holder = holders.start(first, role)
            await within(holder.acquired.wait(), self.wait_timeout, "the role")
            waiter = holders.start(second, role)
            await _yield_to_others()
            assert not waiter.acquired.is_set(), "a second scheduler got a held role"

            waiter.task.cancel()
            done, _ = await asyncio.wait({waiter.task}, timeout=self.wait_timeout)

            assert waiter.task in done, "hold() kept waiting after it was cancelled"
            assert waiter.task.cancelled()
            assert not waiter.acquired.is_set()
            assert holder.lease is not None
            assert not holder.lease.lost(), "cancelling a waiter disturbed the holder"
            # The cancelled waiter left no claim behind.
            holder.release.set()
            successor = holders.start(second, role)
            await within(successor.acquired.wait(), self.wait_timeout, "the released role")

    async def test_exiting_the_block_lets_a_waiter_acquire(
        self, make_schedulers: SchedulerFactory
    ) -> None:
        first, second = await make_schedulers(2)
        role = new_name("leader-handover")
        async with _Holders(self.wait_timeout) as holders:
            holder = holders.start(first, role)
            await within(holder.acquired.wait(), self.wait_timeout, "the role")
            waiter = holders.start(second, role)
            await _yield_to_others()
            assert not waiter.acquired.is_set(), "a second scheduler got a held role"

            holder.release.set()

            await within(waiter.acquired.wait(), self.wait_timeout, "the released role")
            await within(holder.task, self.wait_timeout, "the holder to exit")
            assert holder.lease is not None
            assert holder.lease.lost()
            assert holders.tracker.most == 1

    async def test_different_roles_are_held_independently(
        self, make_schedulers: SchedulerFactory
    ) -> None:
        first, second = await make_schedulers(2)
        async with _Holders(self.wait_timeout) as holders:
            one = holders.start(first, new_name("role-one"))
            other = holders.start(second, new_name("role-two"))

            await within(one.acquired.wait(), self.wait_timeout, "the first role")
            await within(other.acquired.wait(), self.wait_timeout, "the second role")

    async def test_close_is_idempotent(self, make_schedulers: SchedulerFactory) -> None:
        # Given a scheduler that has held and released a role
        (scheduler,) = await make_schedulers(1)
        async with asyncio.timeout(self.wait_timeout), scheduler.hold(new_name("closing")):
            pass

        # When it is closed twice, the second close returns (None) instead of raising
        await scheduler.close()
        await scheduler.close()
