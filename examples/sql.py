"""Invoices on a SQL database: SQLite by default, PostgreSQL or MariaDB/MySQL given a URL.

    DRAFT --issue--> ISSUED --payment (callback)--> PAID

The port of luno/workflow's ``_examples/sqlexample`` (which used MySQL through ``sqlstore``
and ``sqltimeout``). Run it with::

    python examples/sql.py                                   # a SQLite file in a temp folder
    python examples/sql.py postgresql://postgres@127.0.0.1/test
    python examples/sql.py mysql://root@127.0.0.1:3306/test

It migrates the schema first (``conveyor.migrate(url)``, which ``conveyor migrate --store
URL`` does from a shell; ``?migrate=true`` on a PostgreSQL or MySQL URL does it at start-up
instead), then opens every part from the one URL with ``conveyor.connect``: records, events,
roles and timeouts all live in that database. A second run on the same database finds the
first run's invoices finished and starts new runs for them.
"""

import asyncio
import enum
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import conveyor
from conveyor import Builder, Run

INVOICES = {"inv-1": 120, "inv-2": 80, "inv-3": 45}


class Invoice(enum.IntEnum):
    UNKNOWN = 0
    DRAFT = 1
    ISSUED = 2
    PAID = 3


@dataclass
class Bill:
    amount: int = 0
    number: str = ""


async def issue(run: Run[Bill, Invoice]) -> Invoice:
    run.object.number = f"2024-{run.foreign_id}"
    return Invoice.ISSUED


def paid(run: Run[Bill, Invoice], payload: bytes) -> Invoice:
    return Invoice.PAID


def builder() -> Builder[Bill, Invoice]:
    b = Builder("invoices", Bill, Invoice)
    b.add_step(Invoice.DRAFT, issue, Invoice.ISSUED)
    b.add_callback(Invoice.ISSUED, paid, Invoice.PAID)
    return b


async def main(url: str) -> dict[str, Run[Bill, Invoice]]:
    report = await conveyor.migrate(url)
    if report is not None:
        print(f"schema version {report.from_version} -> {report.to_version}")
    done: dict[str, Run[Bill, Invoice]] = {}
    async with conveyor.connect(url) as backend:
        wf = builder().build(
            backend.streamer,
            backend.record_store,
            backend.role_scheduler,
            timeout_store=backend.timeout_store,
        )
        async with wf, asyncio.timeout(30):
            ids = {
                fid: await wf.trigger(fid, initial=Bill(amount)) for fid, amount in INVOICES.items()
            }
            for fid, run_id in ids.items():
                await wf.wait(fid, run_id, Invoice.ISSUED)
                await wf.callback(fid, Invoice.ISSUED, b"paid")
                done[fid] = await wf.wait(fid, run_id, Invoice.PAID)
                run = done[fid]
                print(
                    f"{fid} {run.object.number}: {run.status.name} {run.run_state} v{run.version}"
                )
    return done


if __name__ == "__main__":
    if len(sys.argv) > 1:
        asyncio.run(main(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            asyncio.run(main(f"sqlite:///{Path(folder) / 'invoices.db'}"))
