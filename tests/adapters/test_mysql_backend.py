"""``conveyor.connect("mysql://...")``: the four adapters from one URL, a workflow running
on them end to end, the schema's checks, and passwords never shown."""

from __future__ import annotations

import enum
import traceback
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest
from _mysql_support import admin_sql, mysql_url
from click.testing import CliRunner

import conveyor
from conveyor import AdapterError, Builder, Run, RunState
from conveyor.adapters.mysql import MySQLBackend
from conveyor.cli import cli
from conveyor.testing import wait_for

__all__ = ["mysql_url"]

PASSWORD = "hunter2-secret"


@pytest.fixture(scope="module")
def user_url(mysql_url: str) -> str:
    """``mysql_url`` as a user with a password (the root user here has none)."""
    import asyncio

    parts = urlsplit(mysql_url)
    database = parts.path.lstrip("/")
    for sql in (
        f"CREATE USER IF NOT EXISTS 'conveyor_pw'@'%' IDENTIFIED BY '{PASSWORD}'",
        f"CREATE USER IF NOT EXISTS 'conveyor_pw'@'localhost' IDENTIFIED BY '{PASSWORD}'",
        f"GRANT ALL ON `{database}`.* TO 'conveyor_pw'@'%'",
        f"GRANT ALL ON `{database}`.* TO 'conveyor_pw'@'localhost'",
    ):
        asyncio.run(admin_sql(mysql_url, sql))
    netloc = f"conveyor_pw:{PASSWORD}@{parts.hostname}:{parts.port or 3306}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


class Order(enum.IntEnum):
    UNKNOWN = 0
    PLACED = 1
    PAID = 2
    PACKED = 3
    SHIPPED = 4


@dataclass
class Parcel:
    items: int = 1


async def pack(run: Run[Parcel, Order]) -> Order:
    return Order.PACKED


async def ship(run: Run[Parcel, Order]) -> Order:
    return Order.SHIPPED


def paid(run: Run[Parcel, Order], payload: bytes) -> Order:
    return Order.PAID


@pytest.mark.parametrize("scheme", ["mysql", "mariadb"])
async def test_a_workflow_runs_end_to_end_on_one_url(mysql_url: str, scheme: str) -> None:
    url = with_query(
        mysql_url.replace("mysql://", f"{scheme}://", 1), f"table_prefix=e2e_{scheme}_"
    )
    b = Builder("parcels", Parcel, Order)
    b.add_callback(Order.PLACED, paid, Order.PAID)
    b.add_step(Order.PAID, pack, Order.PACKED)
    b.add_step(Order.PACKED, ship, Order.SHIPPED)
    async with conveyor.connect(with_query(url, "migrate=true")) as backend:
        assert isinstance(backend, MySQLBackend)
        wf = b.build(
            backend.streamer,
            backend.record_store,
            backend.role_scheduler,
            timeout_store=backend.timeout_store,
        )
        async with wf:
            run_ids = [await wf.trigger(f"p-{i}", initial=Parcel(items=i)) for i in range(20)]
            for i in range(20):
                await wf.wait(f"p-{i}", run_ids[i], Order.PLACED)
                await wf.callback(f"p-{i}", Order.PLACED, b"paid")
            for i in range(20):
                run = await wait_for(wf, f"p-{i}", lambda r: r.run_state is RunState.COMPLETED)
                assert (run.status, run.object.items, run.meta.version) == (Order.SHIPPED, i, 4)


async def test_a_missing_schema_names_migrate(mysql_url: str) -> None:
    with pytest.raises(AdapterError, match=r"is missing.*conveyor migrate"):
        async with conveyor.connect(with_query(mysql_url, "table_prefix=never_")):
            pass


async def test_a_newer_schema_is_refused(mysql_url: str) -> None:
    url = with_query(mysql_url, "table_prefix=newer_")
    await conveyor.migrate(url)
    await admin_sql(
        mysql_url, "INSERT INTO newer_schema_migrations (version, name) VALUES (99, 'x')"
    )
    with pytest.raises(AdapterError, match="version 99, newer than this conveyor knows"):
        async with conveyor.connect(url):
            pass


def test_migrate_says_what_it_did_and_masks_the_password(user_url: str) -> None:
    url = with_query(user_url, "table_prefix=cli_")
    said = []
    for _ in range(2):
        result = CliRunner().invoke(cli, ["migrate", "--store", url])
        assert result.exit_code == 0, result.output
        assert PASSWORD not in result.output
        assert "conveyor_pw:***@" in result.output
        said.append(result.output)
    assert said[0].startswith("created schema version 4")
    assert said[1].startswith("schema is up to date (version 4)")


async def test_errors_never_show_the_password(user_url: str) -> None:
    parts = urlsplit(user_url)
    cases = [
        urlunsplit((parts.scheme, f"conveyor_pw:{PASSWORD}@127.0.0.1:1", parts.path, "", "")),
        urlunsplit(
            (
                parts.scheme,
                f"conveyor_pw:{PASSWORD}x@{parts.netloc.split('@')[1]}",
                parts.path,
                "",
                "",
            )
        ),
        with_query(user_url, "table_prefix=bad-prefix"),
        with_query(user_url, "role_ttl=abc"),
    ]
    for url in cases:
        with pytest.raises(AdapterError) as caught:
            async with conveyor.connect(url):
                pass
        shown = "".join(traceback.format_exception(caught.value))
        assert PASSWORD not in shown, shown
    async with conveyor.connect(with_query(user_url, "table_prefix=cli_")) as backend:
        assert PASSWORD not in repr(backend)
        assert "conveyor_pw:***@" in repr(backend)
