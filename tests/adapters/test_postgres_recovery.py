"""A workflow on PostgreSQL survives every connection being dropped, repeatedly, mid-run
(what a server restart looks like from the clients), without lost or repeated
transitions.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Any

import pytest
from _pg_support import FAST_ROLES, migrated, open_database, pg_url

import conveyor
from conveyor import Builder, Run, Workflow

__all__ = ["pg_url"]

pytestmark = pytest.mark.postgres

SCHEMA = "recovery"
RUNS = 200


class Status(enum.IntEnum):
    UNKNOWN = 0
    NEW = 1
    HALF = 2
    DONE = 3


async def _half(run: Run[dict[str, Any], Status]) -> Status:
    await asyncio.sleep(0.002)  # some work, so that drops land mid-step (proves nothing)
    return Status.HALF


async def _done(run: Run[dict[str, Any], Status]) -> Status:
    await asyncio.sleep(0.002)  # some work, so that drops land mid-step (proves nothing)
    return Status.DONE


def _build(backend: conveyor.Backend) -> Workflow[dict[str, Any], Status]:
    b = Builder("recovery", dict, Status)
    b.add_step(Status.NEW, _half, Status.HALF).with_options(parallel_count=2)
    b.add_step(Status.HALF, _done, Status.DONE)
    return b.build(
        backend.streamer,
        backend.record_store,
        backend.role_scheduler,
        timeout_store=backend.timeout_store,
    )


async def _trigger(wf: Workflow[Any, Status], backend: conveyor.Backend, foreign_id: str) -> str:
    """Trigger, retrying when the connection was dropped under the write (which then may
    or may not have committed: a second attempt finds the first run in progress)."""
    for _ in range(5):
        try:
            return await wf.trigger(foreign_id)
        except conveyor.AdapterUnavailable:
            continue
        except conveyor.WorkflowInProgress:
            return (await backend.record_store.latest(wf.name, foreign_id)).run_id
    raise AssertionError(f"could not trigger {foreign_id}")


async def test_runs_complete_exactly_once_while_every_connection_is_dropped(pg_url: str) -> None:
    await migrated(pg_url, SCHEMA)
    async with open_database(pg_url, SCHEMA, fresh=True) as admin:
        t = admin.tables
        async with admin.connection("test") as conn:
            await conn.execute(
                f"""
                CREATE TABLE IF NOT EXISTS {t.schema}.writes (run_id text, version bigint);
                TRUNCATE {t.schema}.writes;
                CREATE OR REPLACE FUNCTION {t.schema}.log_write() RETURNS trigger
                LANGUAGE plpgsql AS $$ BEGIN
                    INSERT INTO {t.schema}.writes VALUES (NEW.run_id, NEW.version);
                    RETURN NEW;
                END $$;
                DROP TRIGGER IF EXISTS log_write ON {t.records};
                CREATE TRIGGER log_write AFTER INSERT OR UPDATE ON {t.records}
                    FOR EACH ROW EXECUTE FUNCTION {t.schema}.log_write();
                """
            )
        options = "&".join(f"{k}={v}" for k, v in FAST_ROLES.items())
        url = f"{pg_url}?schema={SCHEMA}&{options}&application_name=recovery-workflow"
        async with conveyor.connect(url) as backend:
            wf = _build(backend)
            async with wf:
                # Given runs in flight
                ids = [await _trigger(wf, backend, f"r-{i}") for i in range(RUNS // 2)]

                # When every connection of the workflow is terminated, three times over
                async def drop_all() -> int:
                    async with admin.connection("test") as conn:
                        return int(
                            await conn.fetchval(
                                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE application_name = 'recovery-workflow'"
                            )
                        )

                dropped = [await drop_all()]
                for i in range(RUNS // 2, RUNS):
                    ids.append(await _trigger(wf, backend, f"r-{i}"))
                    if i % 40 == 0:
                        dropped.append(await drop_all())

                # Then every run completes
                async with asyncio.timeout(60):
                    for foreign_id, run_id in zip(
                        (f"r-{i}" for i in range(RUNS)), ids, strict=True
                    ):
                        await wf.wait(foreign_id, run_id, Status.DONE)
            listener_connections = backend.database.listener_connections  # type: ignore[attr-defined]

        # ... each transition written exactly once, and the listener came back each time
        assert sum(dropped) >= 3 * len(dropped)
        rows = await admin.fetch(
            "test",
            f"SELECT run_id, version, count(*) FROM {t.schema}.writes "
            "GROUP BY run_id, version HAVING count(*) > 1",
        )
        assert rows == [], f"versions written twice: {rows[:5]}"
        counts = await admin.fetch(
            "test",
            f"SELECT count(*) FROM {t.records} WHERE status = $1 AND version = 3",
            int(Status.DONE),
        )
        assert counts[0][0] == RUNS
        assert listener_connections > 1
