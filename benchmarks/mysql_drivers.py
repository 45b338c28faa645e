"""Which async MySQL driver: asyncmy or aiomysql, for conveyor's write path on MariaDB/MySQL.

Measures writes per second of one compare-and-set update plus one event insert in a
transaction (the record store's write), with 1 task and with 8 tasks on a pool of 8, and
a point read by primary key. Prints one JSON line. Bodies are text: aiomysql 0.3.2 fails
on ``bytes`` parameters with PyMySQL 1.2 (``TypeError: 'str' object is not callable`` in
its escaping), which alone rules it out for a store of binary objects.

    python benchmarks/mysql_drivers.py [--url mysql://root@127.0.0.1:3306/test] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from typing import Any
from urllib.parse import urlsplit

SETUP = [
    "DROP TABLE IF EXISTS bench_drv_records",
    "DROP TABLE IF EXISTS bench_drv_events",
    "CREATE TABLE bench_drv_records (id BIGINT PRIMARY KEY, version BIGINT NOT NULL,"
    " body VARBINARY(512) NOT NULL) ENGINE=InnoDB",
    "CREATE TABLE bench_drv_events (id BIGINT AUTO_INCREMENT PRIMARY KEY, run BIGINT NOT NULL,"
    " body VARBINARY(512) NOT NULL) ENGINE=InnoDB",
]
ROWS = 10_000


async def _pool(driver: str, url: str, size: int) -> Any:  # Any: either driver's pool
    p = urlsplit(url)
    kwargs: dict[str, Any] = dict(
        host=p.hostname or "127.0.0.1",
        port=p.port or 3306,
        user=p.username or "root",
        password=p.password or "",
        db=p.path.lstrip("/") or "test",
        minsize=size,
        maxsize=size,
        autocommit=True,
    )
    if driver == "asyncmy":
        import asyncmy

        return await asyncmy.create_pool(**kwargs)
    import aiomysql

    return await aiomysql.create_pool(**kwargs)


async def _writes(pool: Any, tasks: int, seconds: float) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        nonlocal done
        i = n
        async with pool.acquire() as conn, conn.cursor() as cur:
            while time.perf_counter() < stop:
                run = i % ROWS
                await cur.execute("BEGIN")
                await cur.execute("SELECT version FROM bench_drv_records WHERE id=%s", (run,))
                (version,) = await cur.fetchone()
                await cur.execute(
                    "UPDATE bench_drv_records SET version=version+1, body=%s"
                    " WHERE id=%s AND version=%s",
                    ("x" * 200, run, version),
                )
                await cur.execute(
                    "INSERT INTO bench_drv_events (run, body) VALUES (%s, %s)", (run, "e" * 100)
                )
                await cur.execute("COMMIT")
                done += 1
                i += tasks

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(tasks)))
    return done / (time.perf_counter() - started)


async def _reads(pool: Any, seconds: float) -> float:
    done = 0
    stop = time.perf_counter() + seconds
    async with pool.acquire() as conn, conn.cursor() as cur:
        started = time.perf_counter()
        while time.perf_counter() < stop:
            await cur.execute(
                "SELECT id, version, body FROM bench_drv_records WHERE id=%s", (done % ROWS,)
            )
            await cur.fetchone()
            done += 1
    return done / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="mysql://root@127.0.0.1:3306/test")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    setup = await _pool("aiomysql", args.url, 1)
    async with setup.acquire() as conn, conn.cursor() as cur:
        for sql in SETUP:
            await cur.execute(sql)
        await cur.executemany(
            "INSERT INTO bench_drv_records VALUES (%s, 1, %s)", [(i, "x") for i in range(ROWS)]
        )
    setup.close()
    await setup.wait_closed()
    for _ in range(args.rounds):  # interleaved rounds: the machine is shared and noisy
        for driver in ("asyncmy", "aiomysql"):
            out = results.setdefault(driver, {"write_1": [], "write_8": [], "read_1": []})
            pool = await _pool(driver, args.url, 8)
            out["write_1"].append(await _writes(pool, 1, args.seconds))
            out["write_8"].append(await _writes(pool, 8, args.seconds))
            out["read_1"].append(await _reads(pool, args.seconds))
            pool.close()
            await pool.wait_closed()
    median = {
        d: {k: round(sorted(v)[len(v) // 2]) for k, v in r.items()} for d, r in results.items()
    }
    print(
        json.dumps(
            {
                "bench": "mysql_drivers",
                "per_second_median": median,
                "rounds": args.rounds,
                "machine": platform.platform(),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
