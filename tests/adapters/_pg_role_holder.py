"""A process that holds one role on PostgreSQL until its lease is lost or stdin closes.

    python _pg_role_holder.py <url with schema and role timings> <role>

Prints ``held <epoch>`` once it holds the role and ``lost <reason>`` if the lease is lost.
"""

from __future__ import annotations

import asyncio
import sys

from conveyor.adapters.postgres import open_backend


async def main(url: str, role: str) -> None:
    async with open_backend(url) as backend:
        async with backend.role_scheduler.hold(role) as lease:
            print("held", getattr(lease, "epoch", 0), flush=True)
            stdin_closed = asyncio.ensure_future(
                asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            )
            lost = asyncio.ensure_future(lease.wait_lost())
            await asyncio.wait({stdin_closed, lost}, return_when=asyncio.FIRST_COMPLETED)
            if lost.done():
                print("lost", getattr(lease, "reason", ""), flush=True)
                return
            lost.cancel()
        print("released", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
