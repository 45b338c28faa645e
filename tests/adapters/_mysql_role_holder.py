"""A process that holds one role on MySQL until its lease is lost or stdin closes.

    python _mysql_role_holder.py <url with table_prefix and role timings> <role>

Prints ``held <epoch> <member id>`` once it holds the role, ``lost <reason>`` if the lease
is lost, and ``released`` once it left the block after stdin closed.
"""

from __future__ import annotations

import asyncio
import sys

from conveyor.adapters.mysql import MySQLDatabase, MySQLRoleScheduler


async def main(url: str, role: str) -> None:
    db = await MySQLDatabase.open(url)
    scheduler = MySQLRoleScheduler(db)
    try:
        async with scheduler.hold(role) as lease:
            print("held", lease.epoch, scheduler.member_id, flush=True)
            stdin_closed = asyncio.ensure_future(
                asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            )
            lost = asyncio.ensure_future(lease.wait_lost())
            await asyncio.wait({stdin_closed, lost}, return_when=asyncio.FIRST_COMPLETED)
            if lost.done():
                print("lost", lease.reason, flush=True)
                return
            lost.cancel()
        print("released", flush=True)
    finally:
        await scheduler.close()
        await db.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
