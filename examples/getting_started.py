import asyncio
import enum
from dataclasses import dataclass

from conveyor import Builder, Run
from conveyor.adapters.memory import (
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
)


class Status(enum.IntEnum):
    UNKNOWN = 0  # 0 is reserved
    STARTED = 1
    EMAIL_SET = 2
    DONE = 3


@dataclass
class User:
    uid: str = ""
    email: str = ""


async def set_email(run: Run[User, Status]) -> Status:
    run.object.email = f"{run.object.uid}@example.com"
    return Status.EMAIL_SET


def finish(run: Run[User, Status]) -> Status:  # plain functions run in a worker thread
    print(f"welcome mail sent to {run.object.email} (key {run.idempotency_key})")
    return Status.DONE


b = Builder("sync user", User, Status)
b.add_step(Status.STARTED, set_email, Status.EMAIL_SET).with_options(parallel_count=5)
b.add_step(Status.EMAIL_SET, finish, Status.DONE)


async def main() -> None:
    wf = b.build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())
    async with wf:  # run() ... stop()
        run_id = await wf.trigger("user-42", initial=User(uid="user-42"))
        async with asyncio.timeout(5):
            run = await wf.wait("user-42", run_id, Status.DONE)
        print(run.status.name, run.run_state, run.object, f"version={run.version}")


if __name__ == "__main__":
    asyncio.run(main())
