"""The transactional outbox: every write publishes exactly one event, relayed by a woken relay."""

from __future__ import annotations

import asyncio

import pytest

from conveyor import OutboxOptions, RunState
from conveyor.abc import Header, delete_topic, run_state_change_topic, topic
from conveyor.testing import run_until_idle

from ._support import WAIT, Env, Status, events_on, linear, parked


async def test_every_write_is_relayed_once_to_the_topic_of_its_run_state(env: Env) -> None:
    wf = env.build(linear("outbox"))
    async with wf:
        # When a run goes through and then has its data deleted
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", rid, Status.DONE)
        await wf.delete_data(rid, "gdpr")
        await run_until_idle(wf, timeout=WAIT)

    # Then each stored version produced one event with the six headers
    history = env.store.snapshots(wf.name, "fid", rid)
    assert [(r.version, r.run_state) for r in history] == [
        (1, RunState.INITIATED),
        (2, RunState.RUNNING),
        (3, RunState.COMPLETED),
        (4, RunState.REQUESTED_DATA_DELETED),
        (5, RunState.DATA_DELETED),
    ]
    expected_topics = {
        1: topic("outbox", Status.STARTED),
        2: topic("outbox", Status.MIDDLE),
        3: run_state_change_topic("outbox"),
        4: delete_topic("outbox"),
        5: run_state_change_topic("outbox"),
    }
    seen: dict[int, str] = {}
    for name in set(expected_topics.values()) | {topic("outbox", Status.DONE)}:
        for event in await events_on(env.streamer, name):
            h = event.headers
            assert event.foreign_id == rid  # the run ID, as in the original
            assert h[Header.RUN_ID] == rid
            assert h[Header.FOREIGN_ID] == "fid"
            assert h[Header.WORKFLOW_NAME] == "outbox"
            assert h[Header.TOPIC] == name
            version = int(h[Header.RECORD_VERSION])
            assert h[Header.RUN_STATE] == str(int(history[version - 1].run_state))
            assert event.type == history[version - 1].status
            assert version not in seen, "relayed twice"
            seen[version] = name
    assert seen == expected_topics
    # A terminal status emits nothing on its own status topic
    assert await events_on(env.streamer, topic("outbox", Status.DONE)) == []


async def test_the_outbox_is_empty_once_idle(env: Env) -> None:
    wf = env.build(linear())
    async with wf:
        for i in range(10):
            await wf.trigger(f"fid-{i}")
        assert env.store.outbox_size() >= 10
        await run_until_idle(wf, timeout=WAIT)
        assert env.store.outbox_size() == 0
        assert await env.store.list_outbox_events(wf.name, 1000) == []


async def test_an_event_left_in_the_outbox_is_relayed_by_the_next_relay(env: Env) -> None:
    # Given a write whose event was still in the outbox when the workflow stopped
    wf = env.build(parked())
    async with wf:
        rid = await wf.trigger("fid")
    assert env.store.outbox_size() == 1
    # When another instance runs
    other = env.build(parked())
    async with other:
        await run_until_idle(other, timeout=WAIT)
    events = await events_on(env.streamer, topic("parked", Status.STARTED))
    assert [e.foreign_id for e in events] == [rid]
    assert env.store.outbox_size() == 0


async def test_the_relay_is_woken_by_writes_not_by_polling(env: Env) -> None:
    # Given a relay that would poll only once an hour
    wf = env.build(linear("push"), outbox=OutboxOptions(polling_frequency=3600))
    async with wf:
        # Then runs triggered one after another, each after the relay went back to sleep,
        # still complete at once
        async with asyncio.timeout(WAIT):
            for i in range(5):
                await run_until_idle(wf, timeout=WAIT)
                rid = await wf.trigger(f"fid-{i}")
                await wf.wait(f"fid-{i}", rid, Status.DONE)


def test_outbox_options_defaults_and_validation() -> None:
    opts = OutboxOptions()
    assert (opts.polling_frequency, opts.err_backoff, opts.lag_alert, opts.lookup_limit) == (
        0.25,
        0.5,
        60.0,
        1000,
    )
    with pytest.raises(ValueError, match="lookup_limit"):
        OutboxOptions(lookup_limit=0)
    with pytest.raises(ValueError, match="polling_frequency"):
        OutboxOptions(polling_frequency=-1)
