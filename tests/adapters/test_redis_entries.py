"""How the Redis adapters write JSON fields, read an event's headers back and escape names
in keys (no server)."""

from __future__ import annotations

import json
from urllib.parse import quote, unquote

import pytest

from conveyor.adapters.redis._entries import _headers, compact_json, headers_field
from conveyor.adapters.redis._record_keys import part


def test_json_fields_are_compact_utf8_that_json_reads_back() -> None:
    value = {"v": 3, "r": "café ☃", "n": None, "at": 1_733_150_000_000_000}

    raw = compact_json(value)

    assert raw == '{"v":3,"r":"café ☃","n":null,"at":1733150000000000}'.encode()
    assert json.loads(raw) == value


def test_a_lone_surrogate_is_escaped_instead_of_failing_the_write() -> None:
    raw = compact_json({"r": "half \ud800 a pair"})

    assert raw == b'{"r":"half \\ud800 a pair"}'
    assert json.loads(raw) == {"r": "half \ud800 a pair"}


def test_headers_round_trip() -> None:
    headers = {"topic": "orders-2", "x-custom": "any value ☃ =;,", "empty": ""}

    assert _headers(headers_field(headers)) == headers


@pytest.mark.parametrize(
    "raw",
    [b"not json", b'{"a":1}', b"[]", b"\xff\xfe", b'{"a":"\\ud800"}'],
    ids=["not-json", "not-a-string", "not-an-object", "not-utf8", "lone-surrogate"],
)
def test_headers_that_do_not_decode_are_empty(raw: bytes) -> None:
    assert _headers(raw) == {}


@pytest.mark.parametrize(
    "name",
    [
        "",
        "0b7c3c9e-3f7a-4d8e-9a47-2c1f0e6b5d11",
        "sync user",
        "a.b",
        "*",
        ">",
        "a:b",
        "{tag}",
        "é",
        "%41",
        *(f"x{chr(c)}y" for c in range(128)),
    ],
)
def test_a_key_part_is_the_name_percent_escaped(name: str) -> None:
    assert part(name) == quote(name, safe="")
    assert unquote(part(name)) == name
    assert ":" not in part(name)
