"""conveyor.connect: one URL gives the four adapters."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import conveyor
import conveyor.abc
from conveyor.adapters.memory import MemoryRecordStore


async def test_memory_url_opens_the_memory_adapters() -> None:
    async with conveyor.connect("memory://") as backend:
        assert isinstance(backend.record_store, MemoryRecordStore)
        assert backend.url == "memory://"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("orders.db", "not a backend URL", id="no-scheme"),
        pytest.param(
            "cassandra://localhost", "unknown backend scheme 'cassandra'", id="unknown-scheme"
        ),
    ],
)
async def test_bad_urls_raise_adapter_errors(url: str, message: str) -> None:
    with pytest.raises(conveyor.AdapterError, match=message):
        async with conveyor.connect(url):
            pass


async def test_unknown_options_are_rejected() -> None:
    with pytest.raises(TypeError, match="unknown memory:// options: colour"):
        async with conveyor.connect("memory://", colour="blue"):
            pass


async def test_a_registered_backend_migrates_with_its_registered_migrator(
    tmp_path: Path,
) -> None:
    # Given a scheme registered with an opener and a migrator (a module written for the test)
    module = tmp_path / "fake_backend_for_migrate.py"
    module.write_text(
        "from conveyor.abc import MigrationReport\n"
        "calls = []\nasync def migrate(url, **options):\n    calls.append((url, options))\n"
        "async def reporting(url):\n"
        "    return MigrationReport(created=False, from_version=7, to_version=7)\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        conveyor.abc.register_backend(
            "fakemig", "conveyor.adapters.memory:open_backend", "fake_backend_for_migrate:migrate"
        )
        conveyor.abc.register_backend("fakenomig", "conveyor.adapters.memory:open_backend")
        conveyor.abc.register_backend(
            "fakereport",
            "conveyor.adapters.memory:open_backend",
            "fake_backend_for_migrate:reporting",
        )
        # When they are migrated
        reports = [
            await conveyor.migrate("fakemig://x", colour="blue"),
            await conveyor.migrate("fakenomig://x"),
            await conveyor.migrate("fakereport://x"),
        ]
        # Then the migrator ran once, with the URL and options; the other had nothing to run
        import fake_backend_for_migrate  # type: ignore[import-not-found]

        assert fake_backend_for_migrate.calls == [("fakemig://x", {"colour": "blue"})]
        # and only a migrator that returns a report has one to show
        assert reports == [None, None, conveyor.abc.MigrationReport(False, 7, 7)]
    finally:
        sys.path.remove(str(tmp_path))


async def test_a_bad_url_error_does_not_repeat_the_url_and_its_password() -> None:
    with pytest.raises(conveyor.AdapterError) as raised:
        async with conveyor.connect("nosuch://user:s3cret@host/db"):
            pass
    assert "s3cret" not in str(raised.value)
