"""Turns the user's object type into JSON bytes and back.

Supported: dataclasses, msgspec Structs, pydantic models, dicts, and anything else
msgspec can encode and decode (TypedDicts, attrs classes, lists, scalars).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

import msgspec

from ._errors import DecodeError

__all__ = ["Codec", "DecodeError"]

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


def _is_pydantic_model(tp: object) -> bool:
    return (
        isinstance(tp, type)
        and hasattr(tp, "model_validate_json")
        and hasattr(tp, "model_dump_json")
    )


class Codec(Generic[T]):
    """JSON encoding of one object type: the single change point for serialisation."""

    __slots__ = ("_decode", "_encode", "_zero", "type")

    def __init__(self, tp: type[T]) -> None:
        self.type = tp
        self._encode: Callable[[T], bytes]
        self._decode: Callable[[bytes], T]
        self._zero: Callable[[], T]
        if _is_pydantic_model(tp):
            model: Any = tp
            self._encode = lambda obj: cast(Any, obj).model_dump_json().encode()
            self._decode = lambda data: cast(T, model.model_validate_json(data))
            self._zero = lambda: cast(T, model())
        else:
            decoder = msgspec.json.Decoder(tp)
            self._encode = _encoder.encode
            self._decode = decoder.decode
            self._zero = cast(Callable[[], T], tp)

    def encode(self, obj: T) -> bytes:
        """Serialise ``obj`` to JSON bytes (raises ``TypeError`` for unsupported values)."""
        try:
            return self._encode(obj)
        except (msgspec.EncodeError, TypeError) as exc:
            raise TypeError(f"cannot encode {type(obj).__name__} as JSON: {exc}") from exc

    def decode(self, data: bytes) -> T:
        """Parse JSON bytes into the object type (raises ``DecodeError``)."""
        try:
            return self._decode(data)
        except Exception as exc:
            raise DecodeError(f"cannot decode object as {self.type!r}: {exc}") from exc

    def zero(self) -> T:
        """The type's zero value: its no-argument construction (``{}`` for dict)."""
        return self._zero()
