"""An email confirmation: the run waits at EMAIL_SENT until the user's click calls it back.

    SIGNED_UP --send_confirmation--> EMAIL_SENT --confirm (callback)--> CONFIRMED

The port of luno/workflow's ``_examples/callback``. ``wf.callback`` is what a web handler
for the confirmation link would call: a wrong code leaves the run waiting (``run.skip()``),
the right one confirms the account.
"""

import asyncio
import enum
import hashlib
import json
from dataclasses import dataclass

from conveyor import Builder, Run, StepResult
from conveyor.adapters.memory import (
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
)


class Signup(enum.IntEnum):
    UNKNOWN = 0
    SIGNED_UP = 1
    EMAIL_SENT = 2
    CONFIRMED = 3


@dataclass
class Account:
    email: str = ""
    code: str = ""


SENT: list[tuple[str, str]] = []
"""The mail this example 'sends': (address, code)."""


async def send_confirmation(run: Run[Account, Signup]) -> Signup:
    # Steps run at least once: derive the code from the idempotency key, so an attempt that
    # runs again after a crash mails the same code.
    run.object.code = hashlib.sha256(run.idempotency_key.encode()).hexdigest()[:6]
    SENT.append((run.object.email, run.object.code))
    return Signup.EMAIL_SENT


def confirm(run: Run[Account, Signup], payload: bytes) -> StepResult[Signup]:
    clicked = json.loads(payload)
    if clicked.get("code") != run.object.code:
        return run.skip()  # a stale or mistyped link: keep waiting
    return Signup.CONFIRMED


def builder() -> Builder[Account, Signup]:
    b = Builder("email confirmation", Account, Signup)
    b.add_step(Signup.SIGNED_UP, send_confirmation, Signup.EMAIL_SENT)
    b.add_callback(Signup.EMAIL_SENT, confirm, Signup.CONFIRMED)
    return b


async def main() -> None:
    wf = builder().build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())
    async with wf, asyncio.timeout(5):
        run_id = await wf.trigger("user-7", initial=Account(email="ada@example.com"))
        await wf.wait("user-7", run_id, Signup.EMAIL_SENT)
        address, code = SENT[-1]
        print(f"mailed {address} the code {code}")

        run = await wf.callback("user-7", Signup.EMAIL_SENT, b'{"code": "000000"}')
        print("wrong code:", run.status.name, run.run_state)

        run = await wf.callback("user-7", Signup.EMAIL_SENT, json.dumps({"code": code}).encode())
        print("right code:", run.status.name, run.run_state, f"version={run.version}")


if __name__ == "__main__":
    asyncio.run(main())
