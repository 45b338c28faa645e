"""The NATS server (with JetStream) for the test run, and helpers to keep tests apart.

The server is found at ``CONVEYOR_TEST_NATS_URL`` (else ``nats://127.0.0.1:4222``). When
none answers, its JetStream is off, or nats-py is not installed, the NATS tests are skipped
with the reason, unless ``CI=true``: then they fail (``_services``). Tests that use
``nats_url`` carry the ``nats`` marker (tests/conftest.py). Every test names a prefix of
its own (``new_prefix``) and deletes its streams and buckets at the end
(``delete_prefix``), so tests and runs never share a stream.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from _services import unavailable

try:
    import nats
except ImportError:  # pragma: no cover - depends on the environment
    unavailable("NATS", "nats-py is not installed (pip install 'conveyor[nats]')", module=True)

__all__ = ["delete_prefix", "nats_url", "new_prefix", "with_options"]

_DEFAULT = "nats://127.0.0.1:4222"
_state: dict[str, Any] = {"checked": False, "url": None, "reason": ""}


async def _probe(url: str) -> None:
    # max_reconnect_attempts=1: with 0 (or -1) nats-py's first connect retries forever
    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1, allow_reconnect=False)
    try:
        await nc.jetstream().account_info()
    finally:
        await nc.close()


def _find_server() -> tuple[str | None, str]:
    url = os.environ.get("CONVEYOR_TEST_NATS_URL") or _DEFAULT
    try:
        # In a thread of its own: the fixture may be resolved while a loop runs here.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(lambda: asyncio.run(asyncio.wait_for(_probe(url), 5))).result()
    except Exception as exc:
        return None, f"{url}: {exc!r} (a NATS server with JetStream, -js, is needed)"
    return url, ""


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The URL of a NATS server with JetStream; skips (fails with CI=true) without one."""
    if not _state["checked"]:
        _state["url"], _state["reason"] = _find_server()
        _state["checked"] = True
    if _state["url"] is None:
        unavailable("NATS", _state["reason"])
    return str(_state["url"])


def new_prefix(what: str = "t") -> str:
    """A prefix no other test uses (``[A-Za-z0-9_-]``, short enough for every name)."""
    return f"cvt{what}{uuid.uuid4().hex[:10]}"


def with_options(url: str, **options: object) -> str:
    """``url`` with ``options`` in its query string."""
    parts = urlsplit(url)
    query = "&".join(f"{key}={value}" for key, value in options.items())
    if parts.query:
        query = f"{parts.query}&{query}"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


async def delete_prefix(url: str, prefix: str) -> list[str]:
    """Delete every stream (key-value buckets included) of ``prefix``; their names."""
    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1, allow_reconnect=False)
    deleted: list[str] = []
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            name = info.config.name or ""
            if name.startswith((f"{prefix}_", f"KV_{prefix}_")):
                await js.delete_stream(name)
                deleted.append(name)
    finally:
        await nc.close()
    return deleted
