"""Codec: the user's object as JSON bytes, for every supported kind of type."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pydantic
import pytest

from conveyor import Builder, DecodeError
from conveyor._codec import Codec

from ._support import WAIT, Env, Status, to_done, to_middle


@dataclass
class DataUser:
    uid: str = ""
    email: str = ""
    tags: list[str] = field(default_factory=list)


class StructUser(msgspec.Struct):
    uid: str = ""
    email: str = ""
    tags: list[str] = msgspec.field(default_factory=list)


class ModelUser(pydantic.BaseModel):
    uid: str = ""
    email: str = ""
    tags: list[str] = []


@pytest.mark.parametrize(
    ("tp", "value"),
    [
        (DataUser, DataUser("u1", "a@example.com", ["x"])),
        (StructUser, StructUser("u1", "a@example.com", ["x"])),
        (ModelUser, ModelUser(uid="u1", email="a@example.com", tags=["x"])),
        (dict, {"uid": "u1", "email": "a@example.com", "tags": ["x"]}),
    ],
    ids=["dataclass", "msgspec", "pydantic", "dict"],
)
def test_round_trip(tp: type[Any], value: Any) -> None:
    codec: Codec[Any] = Codec(tp)
    data = codec.encode(value)
    assert isinstance(data, bytes)
    assert msgspec.json.decode(data) == {"uid": "u1", "email": "a@example.com", "tags": ["x"]}
    assert codec.decode(data) == value


@pytest.mark.parametrize(
    ("tp", "zero"),
    [
        (DataUser, DataUser()),
        (StructUser, StructUser()),
        (ModelUser, ModelUser()),
        (dict, {}),
    ],
    ids=["dataclass", "msgspec", "pydantic", "dict"],
)
def test_zero_value_is_the_no_argument_construction(tp: type[Any], zero: Any) -> None:
    codec: Codec[Any] = Codec(tp)
    assert codec.zero() == zero
    assert codec.decode(codec.encode(codec.zero())) == zero


UNDECODABLE = [
    pytest.param(tp, data, id=f"{tp.__name__}-{label}")
    for tp in (DataUser, StructUser, ModelUser, dict)
    for label, data in (
        ("garbage", b"not json"),
        ("list", b"[1, 2]"),
        ("wrong-field-type", b'{"uid": 5}'),
        ("empty", b""),
    )
    if not (tp is dict and label == "wrong-field-type")  # any JSON object is a dict
]


@pytest.mark.parametrize(("tp", "data"), UNDECODABLE)
def test_undecodable_bytes_raise_decode_error(tp: type[Any], data: bytes) -> None:
    codec: Codec[Any] = Codec(tp)
    with pytest.raises(DecodeError, match="cannot decode"):
        codec.decode(data)


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(DecodeError, ValueError)


def test_unencodable_values_raise_type_error() -> None:
    codec: Codec[Any] = Codec(DataUser)
    with pytest.raises(TypeError, match="cannot encode"):
        codec.encode(DataUser(uid=object()))  # type: ignore[arg-type]


@pytest.mark.parametrize("tp", [DataUser, StructUser, ModelUser, dict])
async def test_every_kind_of_object_runs_through_a_workflow(env: Env, tp: type[Any]) -> None:
    # Given a workflow whose object type is tp
    b = Builder(f"codec-{tp.__name__}", tp, Status)
    b.add_step(Status.STARTED, to_middle, Status.MIDDLE)
    b.add_step(Status.MIDDLE, to_done, Status.DONE)
    wf = env.build(b)
    initial = Codec(tp).decode(b'{"uid": "u1", "email": "e", "tags": ["t"]}')
    async with wf:
        # When
        rid = await wf.trigger("fid", initial=initial)
        async with asyncio.timeout(WAIT):
            run = await wf.wait("fid", rid, Status.DONE)
    # Then
    assert run.object == initial
    assert type(run.object) is tp
