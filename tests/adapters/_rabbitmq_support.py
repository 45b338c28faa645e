"""The RabbitMQ node (stream protocol) for the test run, and helpers to keep tests apart.

The node is found at ``CONVEYOR_TEST_RABBITMQ_URL`` (else
``rabbitmq-stream://guest:guest@127.0.0.1:5552/``): the stream protocol of the
``rabbitmq_stream`` plugin, which ``.ci/run`` enables. When nothing answers there (no
node, or the plugin is off), the RabbitMQ tests are skipped with the reason, unless
``CI=true``: then they fail (``_services``). Tests that use ``rabbitmq_url`` carry the
``rabbitmq`` marker. Every test names a prefix of its own (``new_prefix``) and deletes
the streams it made at the end (``delete_streams``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from _services import unavailable
from conveyor.adapters.rabbitmq import RabbitConnection
from conveyor.adapters.rabbitmq import _wire as wire

__all__ = [
    "delete_streams",
    "new_prefix",
    "rabbitmq_url",
    "stored_offset",
    "until_stored",
    "with_options",
]

_DEFAULT = "rabbitmq-stream://guest:guest@127.0.0.1:5552/"
_state: dict[str, Any] = {"checked": False, "url": None, "reason": ""}


async def _probe(url: str) -> None:
    connection = RabbitConnection(url, connect_timeout=3)
    try:
        await connection.client()
    finally:
        await connection.close()


def _find_node() -> tuple[str | None, str]:
    url = os.environ.get("CONVEYOR_TEST_RABBITMQ_URL") or _DEFAULT
    try:
        # In a thread of its own: the fixture may be resolved while a loop runs here.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(lambda: asyncio.run(asyncio.wait_for(_probe(url), 5))).result()
    except Exception as exc:
        return None, (
            f"{url.split('@')[-1]}: {exc} (RabbitMQ with its stream plugin is needed: "
            "rabbitmq-plugins enable rabbitmq_stream)"
        )
    return url, ""


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """The stream-protocol URL of a RabbitMQ node; skips (fails with CI=true) without one."""
    if not _state["checked"]:
        _state["url"], _state["reason"] = _find_node()
        _state["checked"] = True
    if _state["url"] is None:
        unavailable("RabbitMQ", _state["reason"])
    return str(_state["url"])


def new_prefix(what: str = "t") -> str:
    """A prefix no other test uses (``[A-Za-z0-9_-]``, short)."""
    return f"cvt{what}{uuid.uuid4().hex[:10]}"


def with_options(url: str, **options: object) -> str:
    """``url`` with ``options`` in its query string."""
    parts = urlsplit(url)
    query = "&".join(f"{key}={value}" for key, value in options.items())
    if parts.query:
        query = f"{parts.query}&{query}"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


async def delete_streams(url: str, names: list[str]) -> None:
    """Delete the streams ``names`` (missing ones are ignored)."""
    if not names:
        return
    connection = RabbitConnection(url)
    try:
        await connection.delete(names)
    finally:
        await connection.close()


async def stored_offset(url: str, stream: str, reference: str) -> int | None:
    """The offset stored under ``reference`` in ``stream`` (read on a connection of its
    own), ``None`` if there is none."""
    connection = RabbitConnection(url)
    try:
        client = await connection.client()
        code, reader = await client.request(
            functools.partial(wire.query_offset_frame, reference=reference, stream=stream),
            "reading an offset",
            allow=(wire.Code.NO_OFFSET,),
        )
        return reader.u64() if code == wire.Code.OK else None
    finally:
        await connection.close()


async def until_stored(url: str, stream: str, reference: str, offset: int) -> None:
    """Wait (polling, with a deadline) until the cursor under ``reference`` is ``offset``."""
    deadline = asyncio.get_running_loop().time() + 10.0
    while (found := await stored_offset(url, stream, reference)) != offset:
        assert asyncio.get_running_loop().time() < deadline, f"cursor {found}, not {offset}"
        await asyncio.sleep(0.01)  # a condition poll with a deadline, not a fixed wait
