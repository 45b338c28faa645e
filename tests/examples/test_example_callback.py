"""examples/callback.py: the confirmation callback confirms only with the mailed code."""

from __future__ import annotations

import json

import callback
import pytest
from callback import Account, Signup

from conveyor import CallbackRejected, RunState, Workflow
from conveyor.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler


def _build() -> Workflow[Account, Signup]:
    return callback.builder().build(
        MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler()
    )


async def test_the_mailed_code_confirms_and_a_wrong_one_keeps_it_waiting() -> None:
    wf = _build()
    async with wf:
        run_id = await wf.trigger("u1", initial=Account(email="u1@example.com"))
        sent = await wf.wait("u1", run_id, Signup.EMAIL_SENT)
        assert (sent.object.email, sent.object.code) in callback.SENT

        wrong = await wf.callback("u1", Signup.EMAIL_SENT, b'{"code": "nope"}')
        assert (wrong.status, wrong.run_state) == (Signup.EMAIL_SENT, RunState.RUNNING)

        body = json.dumps({"code": sent.object.code}).encode()
        confirmed = await wf.callback("u1", Signup.EMAIL_SENT, body)
        assert (confirmed.status, confirmed.run_state) == (Signup.CONFIRMED, RunState.COMPLETED)


async def test_a_click_before_the_mail_is_sent_is_rejected_as_early() -> None:
    # Given a run no worker has moved (a client only: no step runs)
    wf = _build()
    async with wf.client() as client:
        await client.trigger("u2", initial=Account(email="u2@example.com"))
        # When the confirmation arrives before the mail went out
        with pytest.raises(CallbackRejected) as rejected:
            await client.callback("u2", Signup.EMAIL_SENT, b'{"code": "x"}')
    # Then the caller is told to retry later (HTTP 409), and nothing was written
    assert rejected.value.reason == "not_at_status"
