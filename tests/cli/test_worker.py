"""`conveyor worker`: real worker processes, drained by signals.

Each test runs ``python -m conveyor worker _worker_app:...`` in ``tests/cli`` (so the app
module imports) on a SQLite file in the test's folder, and talks to it through the store
(a client, as an API process would). The app's ``charge`` step journals every execution and
blocks on a gate file the test creates.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

import conveyor
from conveyor.adapters.sqlite import SQLiteRoleScheduler

from ._worker_app import Order, Status, builder, failing
from ._workers import BOUND, HERE, Worker, journal, until

pytestmark = pytest.mark.processes


@asynccontextmanager
async def api(url: str) -> AsyncIterator[conveyor.WorkflowClient[Order, Status]]:
    """An API process's view of the workflow (client mode: runs nothing)."""
    async with conveyor.connect(url) as backend:
        wf = builder.build(backend.streamer, backend.record_store, backend.role_scheduler)
        async with wf.client() as client:
            yield client


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'orders.db'}"


async def test_sigterm_drains_a_running_sync_step_and_its_result_is_committed(
    tmp_path: Path, url: str
) -> None:
    # Given a worker whose def step is running (blocked on the gate)
    async with api(url) as client:
        worker = await Worker.start(tmp_path, url)
        try:
            rid = await client.trigger("order-1")
            await until(lambda: len(journal(tmp_path)) == 1, "the step started")
            # When the worker gets SIGTERM, and the step may finish only afterwards
            worker.signal(signal.SIGTERM)
            await until(lambda: any("draining" in line for line in worker.log), "draining")
            (tmp_path / "gate").touch()
            # Then it exits 0 once the step's result is written
            assert await worker.exit_code() == 0, "\n".join(worker.log)
        finally:
            await worker.kill()
        run = await client.lookup(rid)
        assert run.status is Status.CHARGED
        # And a second worker completes the run without executing the step again
        again = await Worker.start(tmp_path, url)
        try:
            async with asyncio.timeout(BOUND):
                done = await client.wait("order-1", rid, Status.SHIPPED)
            again.signal(signal.SIGTERM)
            assert await again.exit_code() == 0
        finally:
            await again.kill()
    assert done.status is Status.SHIPPED
    assert journal(tmp_path) == [f"order-1 {worker.process.pid}"]
    log = "\n".join(worker.log)
    assert "worker started: workflows worker-orders on sqlite:///" in log
    assert "SIGTERM: draining (grace 30s)" in log
    assert "every started attempt is written; stopped" in log


async def test_a_second_signal_exits_at_once(tmp_path: Path, url: str) -> None:
    async with api(url) as client:
        worker = await Worker.start(tmp_path, url)
        try:
            await client.trigger("order-1")
            await until(lambda: len(journal(tmp_path)) == 1, "the step started")
            worker.signal(signal.SIGINT)
            await until(lambda: any("draining" in line for line in worker.log), "draining")
            worker.signal(signal.SIGTERM)
            assert await worker.exit_code() == 128 + signal.SIGTERM
        finally:
            await worker.kill()
    assert any("second signal (SIGTERM): exiting at once" in line for line in worker.log)


async def test_at_the_grace_the_worker_exits_1_and_leaves_the_thread(
    tmp_path: Path, url: str
) -> None:
    async with api(url) as client:
        worker = await Worker.start(tmp_path, url, "_worker_app:builder", "--grace", "0.2")
        try:
            await client.trigger("order-1")
            await until(lambda: len(journal(tmp_path)) == 1, "the step started")
            worker.signal(signal.SIGTERM)
            assert await worker.exit_code() == 1
        finally:
            await worker.kill()
    assert any("steps still running in threads" in line for line in worker.log)


async def test_a_factory_target_and_the_metrics_endpoint(tmp_path: Path, url: str) -> None:
    worker = await Worker.start(tmp_path, url, "_worker_app:factory", "--metrics-port", "0")
    try:
        port = re.search(r"metrics on 127\.0\.0\.1:(\d+)", await worker.started)
        assert port is not None, worker.log
        base = f"http://127.0.0.1:{port.group(1)}"
        ready = await asyncio.to_thread(urllib.request.urlopen, f"{base}/ready", timeout=5)
        assert ready.status == 200
        metrics = await asyncio.to_thread(urllib.request.urlopen, f"{base}/metrics", timeout=5)
        body = metrics.read().decode()
        assert 'workflow_process_states{process_name="new-consumer-1-of-1"' in body
        worker.signal(signal.SIGTERM)
        assert await worker.exit_code() == 0
    finally:
        await worker.kill()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("_worker_app", "expected module:attribute"),
        ("_no_such_module:builder", "cannot import '_no_such_module'"),
        ("_worker_app:missing", "has no attribute 'missing'"),
        ("_worker_app:not_a_workflow", "is a int: name a Builder"),
        ("_worker_app:wrong_factory", "returned str, not a Workflow"),
    ],
)
async def test_bad_targets_fail_with_a_clear_message(
    tmp_path: Path, url: str, target: str, message: str
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "conveyor",
        "worker",
        target,
        "--store",
        url,
        cwd=HERE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(BOUND):
        _, err = await process.communicate()
    assert process.returncode == 1
    assert message in err.decode()
    assert "Traceback" not in err.decode()


async def test_the_store_password_is_masked_in_the_log(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "conveyor",
        "worker",
        "_worker_app:builder",
        "--store",
        "postgresql://app:hunter2@127.0.0.1:1/nowhere",
        cwd=HERE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(BOUND):
        _, err = await process.communicate()
    assert process.returncode == 1
    assert "hunter2" not in err.decode()


async def test_an_api_process_holds_no_role_and_runs_no_step_while_a_worker_does(
    tmp_path: Path, url: str
) -> None:
    (tmp_path / "gate").touch()  # the charge step does not block here
    async with conveyor.connect(url) as backend:
        wf = builder.build(backend.streamer, backend.record_store, backend.role_scheduler)
        async with wf.client() as client:
            worker = await Worker.start(tmp_path, url)
            try:
                rids = [await client.trigger(f"order-{i}") for i in range(10)]
                async with asyncio.timeout(BOUND):
                    done = [
                        await client.wait(f"order-{i}", r, Status.SHIPPED)
                        for i, r in enumerate(rids)
                    ]
                # The API process holds no role, and its processes never ran
                roles = backend.role_scheduler
                assert isinstance(roles, SQLiteRoleScheduler)
                assert roles.held_roles() == []
                assert set(wf.states().values()) == {conveyor.State.UNKNOWN}
                worker.signal(signal.SIGTERM)
                assert await worker.exit_code() == 0
            finally:
                await worker.kill()
    # Every step ran in the worker
    assert [run.object.charged_by for run in done] == [worker.process.pid] * 10
    assert {line.split()[1] for line in journal(tmp_path)} == {str(worker.process.pid)}


async def test_a_failure_is_visible_from_another_process_while_the_run_keeps_its_version(
    tmp_path: Path, url: str
) -> None:
    # Given a worker whose step always fails (the next attempt a minute away)
    worker = await Worker.start(tmp_path, url, "_worker_app:failing")
    try:
        async with conveyor.connect(url) as backend:
            wf = failing.build(backend.streamer, backend.record_store, backend.role_scheduler)
            async with wf.client() as client:
                rid = await client.trigger("order-1")

                # When it has failed once, this process sees the failure
                async def failed() -> bool:
                    return (await client.lookup(rid)).failure is not None

                await until(failed, "the first failure is recorded")
                run = await client.lookup(rid)
        worker.signal(signal.SIGTERM)
        assert await worker.exit_code() == 0
    finally:
        await worker.kill()
    failure = run.failure
    assert failure is not None
    assert (failure.attempt, failure.error_type) == (1, "RuntimeError")
    assert failure.message == "RuntimeError: card declined for order-1"
    assert run.meta.version == 1  # the record was not written
    # And the CLI shows it too
    shown = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "conveyor",
        "runs",
        "show",
        "--store",
        url,
        rid,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    out, _ = await shown.communicate()
    text = out.decode()
    assert shown.returncode == 0
    assert "last failure" in text
    assert "card declined for order-1" in text
    assert "next attempt" in text
