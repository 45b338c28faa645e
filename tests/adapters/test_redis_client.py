"""``RedisClient`` pipelines the commands and scripts made while a batch is in flight:
each caller gets its own reply or error, in order, and a cancelled caller leaves the
others alone.

Every test has a key prefix of its own (``open_redis``), deleted at the end.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis.exceptions
from _mysql_processes import until
from _redis_support import open_redis, redis_url

from conveyor import AdapterError, AdapterUnavailable
from conveyor.adapters.redis import RedisClient
from conveyor.adapters.redis._client import Script
from conveyor.adapters.redis._pipe import pack

__all__ = ["redis_url"]

pytestmark = pytest.mark.redis


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[RedisClient]:
    async with open_redis(redis_url) as opened:
        yield opened


def _counting(client: RedisClient, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the pipelines ``client`` sends from now on."""
    sizes: list[int] = []
    send = client._pipeline_replies

    async def counting(commands: Sequence[Sequence[object]]) -> list[Any]:
        sizes.append(len(commands))
        return await send(commands)

    monkeypatch.setattr(client, "_pipeline_replies", counting)
    return sizes


def _new_script(body: str) -> Script:
    """A script no server has seen yet (its first ``EVALSHA`` meets ``NOSCRIPT``)."""
    return Script(f"-- {uuid.uuid4().hex}\n{body}")


async def test_commands_made_together_go_in_one_round_trip_with_their_own_replies(
    client: RedisClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a key per caller
    key = f"{client.options.key_prefix}:n"
    await client.command("test", "SET", key, "0")
    sizes = _counting(client, monkeypatch)

    # When ten callers send at once, one of them a command the server refuses
    async def call(i: int) -> Any:
        if i == 5:
            return await client.command("test", "HGET", key, "f")  # a string, not a hash
        return await client.command("test", "INCR", key)

    results = await asyncio.gather(*(call(i) for i in range(10)), return_exceptions=True)

    # Then they went in one pipeline, in order, and only the refused one failed
    assert sizes == [10]
    assert isinstance(results[5], AdapterError)
    assert "WRONGTYPE" in str(results[5])
    assert [r for i, r in enumerate(results) if i != 5] == list(range(1, 10))


async def test_an_unknown_script_runs_alone_or_in_a_batch(client: RedisClient) -> None:
    # Given scripts the server has never seen
    key = f"{client.options.key_prefix}:s"
    alone = _new_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    batched = _new_script("return redis.call('INCRBY', KEYS[1], ARGV[1]) * 10")

    # When one runs by itself, and then several with a plain command in between
    assert await client.run("test", alone, [key], [1]) == 1
    results = await asyncio.gather(
        client.run("test", batched, [key], [1]),
        client.command("test", "GET", key),
        client.run("test", batched, [key], [1]),
    )

    # Then each ran once, in order
    assert list(results) == [20, b"2", 30]


async def test_a_script_the_server_forgot_is_run_again_from_its_source(
    client: RedisClient,
) -> None:
    # Given scripts this client ran before as far as it knows, which the server does not
    # know (as after a restart)
    key = f"{client.options.key_prefix}:f"
    forgotten = _new_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    client._loaded.add(forgotten.sha)

    # When it runs alone, and then twice in a batch
    assert await client.run("test", forgotten, [key], [1]) == 1
    client._loaded.discard(forgotten.sha)
    other = _new_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    client._loaded.add(other.sha)
    results = await asyncio.gather(
        client.run("test", other, [key], [10]), client.run("test", other, [key], [100])
    )

    # Then each ran exactly once
    assert sorted(results) == [11, 111]
    assert await client.command("test", "GET", key) == b"111"


async def test_a_cancelled_caller_leaves_the_others_their_replies(
    client: RedisClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a batch in flight, and three callers queued behind it
    key = f"{client.options.key_prefix}:c"
    first = asyncio.create_task(client.command("test", "INCR", key))
    await asyncio.sleep(0)  # the first batch is sent
    queued = [asyncio.create_task(client.command("test", "INCR", key)) for _ in range(3)]
    await asyncio.sleep(0)

    # When the middle one is cancelled
    queued[1].cancel()

    # Then the others get their replies, and the cancelled command was never sent
    assert await first == 1
    assert [await queued[0], await queued[2]] == [2, 3]
    with pytest.raises(asyncio.CancelledError):
        await queued[1]
    assert await client.command("test", "GET", key) == b"3"


async def test_a_closed_client_refuses_commands(redis_url: str) -> None:
    async with open_redis(redis_url) as client:
        await client.command("test", "PING")
    with pytest.raises(AdapterError, match="closed"):
        await client.command("test", "PING")


async def test_a_dropped_connection_fails_its_commands_and_the_next_one_reconnects(
    client: RedisClient,
) -> None:
    # Given a client whose pipelining connection is up
    name = f"pipe-{uuid.uuid4().hex[:8]}"
    await client.command("test", "CLIENT", "SETNAME", name)
    # When the server kills that connection while a command waits on it (BLPOP holds the
    # reply back until the kill lands)
    waiting = asyncio.ensure_future(
        client.command("test", "BLPOP", f"{client.options.key_prefix}:never", 5)
    )
    async with open_redis(client.url) as other:

        async def blocked() -> str | None:
            listing = await other.command("test", "CLIENT", "LIST", "TYPE", "normal")
            for line in listing.decode().splitlines():
                fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
                if fields.get("name") == name and fields.get("cmd") == "blpop":
                    return str(fields["id"])
            return None

        connection = await until("the BLPOP waiting on the server", blocked, 5.0)
        assert await other.command("test", "CLIENT", "KILL", "ID", connection) == 1
    # Then the waiting command fails as unavailable (worth a retry), not with a driver's error
    with pytest.raises(AdapterUnavailable):
        await waiting
    # And the next command gets a new connection
    assert await client.command("test", "PING") in (b"PONG", True)


async def test_the_url_selects_its_database(redis_url: str) -> None:
    # Given a client on database 1 of the test server
    base = redis_url.rsplit("/", 1)[0]
    async with open_redis(f"{base}/1") as client:
        key = f"{client.options.key_prefix}:db"
        await client.command("test", "SET", key, "here")
        # Then the key is in database 1, not in 0
        assert await client.command("test", "GET", key) == b"here"
        async with open_redis(f"{base}/0") as zero:
            assert await zero.command("test", "EXISTS", key) == 0


async def test_a_wrong_password_is_an_error_without_the_password(redis_url: str) -> None:
    # Given a URL whose password the server refuses (it has none set)
    host = redis_url.split("://", 1)[1].rsplit("/", 1)[0]
    url = f"redis://someone:s3cret-pw@{host}/0"
    async with open_redis(url, cleanup=False) as client:
        # Then a command fails with conveyor's error, which never shows the password
        with pytest.raises(AdapterError) as caught:
            await client.command("test", "PING")
    assert "s3cret-pw" not in str(caught.value)
    assert "s3cret-pw" not in repr(caught.value)


@pytest.mark.parametrize(
    "args",
    [
        ("SET", "k", b"v\x00\r\n"),
        ("EVALSHA", "a" * 40, 2, "key:é", "key:2", 2**70, -0.0, 1e-7, 0.1, float("inf")),
        ["XADD", "s", "*", "f", memoryview(b"view")],
    ],
    ids=["bytes", "every-scalar", "list-and-memoryview"],
)
def test_commands_are_packed_as_the_wire_format_says(args: Sequence[object]) -> None:
    def resp(value: object) -> bytes:
        raw = value if isinstance(value, bytes) else (
            bytes(value) if isinstance(value, memoryview) else (
                repr(value) if isinstance(value, float) else str(value)
            ).encode()
        )  # fmt: skip
        return b"$%d\r\n%s\r\n" % (len(raw), raw)

    expected = b"*%d\r\n" % len(args) + b"".join(resp(a) for a in args)

    assert pack([args, args]) == expected * 2


@pytest.mark.parametrize("bad", [None, True, object()], ids=["none", "bool", "object"])
def test_an_argument_redis_cannot_take_is_a_data_error_naming_it(bad: object) -> None:
    with pytest.raises(redis.exceptions.DataError, match="invalid Redis argument"):
        pack([("SET", "k", "v"), ("SET", "k", bad)])
