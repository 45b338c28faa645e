"""Every table and index name fits PostgreSQL's 63-byte identifiers, for any allowed
``table_prefix`` (at most 46 bytes); a longer prefix is refused with a clear error."""

from __future__ import annotations

import re
import uuid

import pytest
from _pg_support import pg_url

import conveyor
from conveyor import AdapterError
from conveyor.adapters.postgres import PostgresOptions, migrate, open_backend
from conveyor.adapters.postgres._options import MAX_TABLE_PREFIX_BYTES, Tables
from conveyor.adapters.postgres._schema import migrations
from conveyor.adaptertest import dummy_record, insert

__all__ = ["pg_url"]

_CREATED = re.compile(r'(?:INDEX|CONSTRAINT) ("(?:[^"]|"")+")')


def _created_names(tables: Tables) -> list[str]:
    """The index and constraint names the migrations create for ``tables``' prefix."""
    sql = "".join(tables.substitute(m.sql) for m in migrations())
    return [name[1:-1].replace('""', '"') for name in _CREATED.findall(sql)]


@pytest.mark.parametrize("char", ["p", "é", "€", '"'])
def test_every_name_fits_and_stays_distinct_for_every_allowed_prefix_length(char: str) -> None:
    size = len(char.encode())
    for length in range(MAX_TABLE_PREFIX_BYTES // size + 1):
        prefix = char * length
        tables = Tables("conveyor", prefix)
        indexes = _created_names(tables)
        relations = [*indexes, *(prefix + t for t in Tables.TABLES)]
        assert len(indexes) == sum(m.sql.count('"{{prefix}}') for m in migrations())
        assert all(len(n.encode()) <= 63 for n in relations), prefix
        assert len(set(relations)) == len(relations), prefix
        assert all(n.startswith(prefix) for n in relations)


def test_short_prefixes_keep_their_full_index_names() -> None:
    assert "blue_records_one_active_run" in _created_names(Tables("conveyor", "blue_"))


@pytest.mark.parametrize(
    ("prefix", "size"),
    [pytest.param("p" * 60, 60, id="60-ascii"), pytest.param("é" * 24, 48, id="24-two-byte")],
)
def test_a_longer_prefix_is_refused_with_the_limit(prefix: str, size: int) -> None:
    message = f"is {size} bytes long in UTF-8; at most {MAX_TABLE_PREFIX_BYTES} are allowed"
    with pytest.raises(AdapterError, match=message):
        PostgresOptions(table_prefix=prefix)
    with pytest.raises(AdapterError, match=message):
        Tables("conveyor", prefix)


@pytest.mark.postgres
async def test_the_longest_prefix_migrates_and_works_and_a_60_character_one_is_refused(
    pg_url: str,
) -> None:
    schema = f"long_prefix_{uuid.uuid4().hex[:8]}"
    longest = "p" * (MAX_TABLE_PREFIX_BYTES - 1) + "_"
    assert await migrate(pg_url, schema=schema, table_prefix=longest) != []
    async with open_backend(pg_url, schema=schema, table_prefix=longest) as backend:
        record = dummy_record()
        await backend.record_store.store(insert(record))
        assert (await backend.record_store.latest(record.workflow_name, "Andrew Wormald")).run_id
        rows = await backend.database.fetch(
            "test",
            "SELECT indexname FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname",
            schema,
        )
    names = [r["indexname"] for r in rows]
    expected = set(_created_names(Tables(schema, longest)))
    assert expected <= set(names)  # as conveyor named them: nothing cut by the server
    assert all(n.startswith(longest) for n in names)

    with pytest.raises(AdapterError, match="at most 46 are allowed"):
        await migrate(pg_url, schema=schema, table_prefix="p" * 60)
    with pytest.raises(AdapterError, match="at most 46 are allowed"):
        async with conveyor.connect(f"{pg_url}?schema={schema}&table_prefix={'p' * 60}"):
            pass  # pragma: no cover
