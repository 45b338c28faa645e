"""Which async Redis driver: redis-py (``redis.asyncio``) or coredis, for conveyor's Redis adapters.

Measures operations per second, with 1 task and with 8 concurrent tasks on one client
(its connection pool), of what the adapters send: an ``EVALSHA`` of a small script (the
role lease's owner-checked renewal: ``GET``, compare, ``PEXPIRE``), an ``EVALSHA`` of the
streamer's send script (``INCR`` the topic's counter, ``XADD`` with that ID), and an
``XREADGROUP`` + ``XACK`` round trip of one entry. Keys live under a random prefix and are
deleted at the end. Prints one JSON line.

    python benchmarks/redis_drivers.py [--url redis://127.0.0.1:6379/0] [--seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

SEND = """
local id = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], id .. '-0', 'f', ARGV[1], 't', ARGV[2], 'h', ARGV[3])
return id
"""

Op = Callable[[int], Awaitable[object]]


class Driver:
    """The four calls the benchmark makes, over either driver (``Any``: two libraries)."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.client: Any
        if name == "redis-py":
            import redis.asyncio

            self.client = redis.asyncio.Redis.from_url(url, max_connections=16)
        else:
            import coredis

            self.client = coredis.Redis.from_url(url, max_connections=16)

    async def open(self) -> None:
        if self.name == "coredis":  # coredis 6 runs its pool inside the client's context
            self.client = await self.client.__aenter__()

    async def load(self, script: str) -> str:
        sha = await self.client.script_load(script)
        return sha.decode() if isinstance(sha, bytes) else str(sha)

    async def evalsha(self, sha: str, keys: list[str], args: list[str]) -> object:
        if self.name == "redis-py":
            return await self.client.evalsha(sha, len(keys), *keys, *args)
        return await self.client.evalsha(sha, keys=keys, args=args)

    async def set(self, key: str, value: str) -> None:
        await self.client.set(key, value)

    async def group(self, stream: str, group: str) -> None:
        if self.name == "redis-py":
            await self.client.xgroup_create(stream, group, id="0", mkstream=True)
        else:
            await self.client.xgroup_create(stream, group, identifier="0", mkstream=True)

    async def read_ack(self, stream: str, group: str, consumer: str) -> int:
        if self.name == "redis-py":
            reply = await self.client.xreadgroup(group, consumer, {stream: ">"}, count=1)
            ids = [entry_id for _, entries in reply for entry_id, _ in entries]
            if ids:
                await self.client.xack(stream, group, *ids)
        else:
            got = await self.client.xreadgroup(group, consumer, {stream: ">"}, count=1)
            ids = [entry.identifier for entries in (got or {}).values() for entry in entries]
            if ids:
                await self.client.xack(stream, group, ids)
        return len(ids)

    async def cleanup(self, prefix: str) -> None:
        keys = [k async for k in self.client.scan_iter(match=f"{prefix}*")]
        if keys and self.name == "redis-py":
            await self.client.delete(*keys)
        elif keys:
            await self.client.delete(keys)

    async def close(self) -> None:
        if self.name == "redis-py":
            await self.client.aclose()
        else:
            await self.client.__aexit__(None, None, None)


async def _rate(op: Op, tasks: int, seconds: float) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await op(n)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(tasks)))
    return round(done / (time.perf_counter() - start))


async def _measure(name: str, url: str, seconds: float) -> dict[str, float]:
    driver = Driver(name, url)
    prefix = f"bench-drv-{uuid.uuid4().hex[:8]}:"
    results: dict[str, float] = {}
    await driver.open()
    try:
        renew = await driver.load(RENEW)
        send = await driver.load(SEND)
        lease = f"{prefix}lease"
        await driver.set(lease, "me")
        stream, counter, group = f"{prefix}stream", f"{prefix}counter", "g"
        await driver.group(stream, group)

        async def renew_op(n: int) -> object:
            return await driver.evalsha(renew, [lease], ["me", "10000"])

        async def send_op(n: int) -> object:
            return await driver.evalsha(send, [stream, counter], [f"fid-{n}", "1", "{}"])

        async def read_ack_op(n: int) -> object:
            return await driver.read_ack(stream, group, f"c{n}")

        for tasks in (1, 8):
            results[f"evalsha_renew_{tasks}"] = await _rate(renew_op, tasks, seconds)
            results[f"evalsha_xadd_{tasks}"] = await _rate(send_op, tasks, seconds)
            # Enough entries for the read phase not to run dry (the sends above made some).
            for i in range(0, 30_000, 16):
                await asyncio.gather(*(send_op(i + j) for j in range(16)))
            results[f"xreadgroup_xack_{tasks}"] = await _rate(read_ack_op, tasks, seconds)
    finally:
        await driver.cleanup(prefix)
        await driver.close()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    import coredis
    import redis

    report: dict[str, object] = {
        "python": platform.python_version(),
        "unit": "operations per second (1 and 8 concurrent tasks)",
        "versions": {"redis-py": redis.__version__, "coredis": coredis.__version__},
    }
    for name in ("redis-py", "coredis"):
        report[name] = await _measure(name, args.url, args.seconds)
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main())
