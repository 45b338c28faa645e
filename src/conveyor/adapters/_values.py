"""The built-in backends' options, from a URL's query string or keyword arguments, checked
with one message format: ``option lease_ttl='abc' is not a number``, ``option
busy_timeout=-5 must be >= 0``. Every failure is an ``AdapterError``.

URL values are strings (``parse`` converts them); keyword values must already have the
option's type (a ``str`` for a number is refused, as is a ``bool``). Numbers are finite.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl

from .._errors import AdapterError

__all__ = [
    "Kind",
    "at_most",
    "boolean",
    "integer",
    "number",
    "numbers",
    "parse",
    "parse_or_none",
    "prefix",
    "query_options",
    "show",
    "text",
]

Kind = Literal["number", "integer", "boolean", "text"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def parse(name: str, raw: str, kind: Kind) -> float | int | bool | str:
    """The URL query value ``raw`` of option ``name`` as a ``kind`` (range unchecked)."""
    if kind == "text":
        return raw
    if kind == "boolean":
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise AdapterError(f"option {name}={raw!r} is not a boolean (true or false)")
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            raise AdapterError(f"option {name}={raw!r} is not an integer") from None
    try:
        value = float(raw)
    except ValueError:
        raise AdapterError(f"option {name}={raw!r} is not a number") from None
    if math.isnan(value):
        raise AdapterError(f"option {name}={raw!r} is not a number")
    if math.isinf(value):
        raise AdapterError(f"option {name}={raw!r} is not a finite number")
    return value


def number(
    name: str, value: object, *, at_least: float | None = None, above: float | None = None
) -> float:
    """``value`` as a finite ``float``, ``>= at_least`` and ``> above`` when given."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AdapterError(f"option {name}={value!r} is not a number")
    if math.isnan(value):
        raise AdapterError(f"option {name}={show(value)} is not a number")
    if math.isinf(value):
        raise AdapterError(f"option {name}={show(value)} is not a finite number")
    if at_least is not None and value < at_least:
        raise AdapterError(f"option {name}={show(value)} must be >= {show(at_least)}")
    if above is not None and value <= above:
        raise AdapterError(f"option {name}={show(value)} must be > {show(above)}")
    return float(value)


def integer(name: str, value: object, *, at_least: int | None = None) -> int:
    """``value`` as an ``int``, ``>= at_least`` when given."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise AdapterError(f"option {name}={value!r} is not an integer")
    if at_least is not None and value < at_least:
        raise AdapterError(f"option {name}={value} must be >= {at_least}")
    return value


def boolean(name: str, value: object) -> bool:
    """``value`` itself if it is a ``bool``."""
    if not isinstance(value, bool):
        raise AdapterError(f"option {name}={value!r} is not a boolean (true or false)")
    return value


def text(name: str, value: object, *, max_bytes: int | None = None, empty: bool = True) -> str:
    """``value`` itself if it is a ``str`` without NUL (non-empty unless ``empty``), of at
    most ``max_bytes`` bytes in UTF-8 when given."""
    if not isinstance(value, str):
        raise AdapterError(f"option {name}={value!r} is not a string")
    if not value and not empty:
        raise AdapterError(f"option {name} must not be empty")
    if "\x00" in value:
        raise AdapterError(f"option {name}={value!r} must not hold a NUL")
    if max_bytes is not None:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise AdapterError(f"option {name}={value!r} is not valid Unicode") from None
        if size > max_bytes:
            raise AdapterError(
                f"option {name}={value!r} is {size} bytes long in UTF-8; at most "
                f"{max_bytes} are allowed"
            )
    return value


def show(value: float) -> str:
    """A number as a user wrote it: ``-5`` for ``-5.0``, ``0.05``, ``nan``, ``inf``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def numbers(
    values: Mapping[str, object],
    *,
    skip: Collection[str],
    at_least: Mapping[str, float],
    above: Mapping[str, float],
    optional: Collection[str] = (),
) -> None:
    """``number`` for every option in ``values`` but those in ``skip`` (the ones in
    ``optional`` may also be ``None``), with each one's bounds."""
    for name, value in values.items():
        if name in skip or (name in optional and value is None):
            continue
        number(name, value, at_least=at_least.get(name), above=above.get(name))


def at_most(name: str, value: float, limit: float, bound: str) -> None:
    """Refuse ``value`` above ``limit``, which ``bound`` names (``role_ttl / 3 (role_ttl=10)``)."""
    if value > limit:
        raise AdapterError(f"option {name}={show(value)} must be at most {bound}")


def parse_or_none(name: str, raw: str, kind: Kind) -> float | int | bool | str | None:
    """``parse``, with an empty value or ``none`` meaning ``None`` (an optional option)."""
    if raw.strip().lower() in ("", "none"):
        return None
    return parse(name, raw, kind)


def query_options(
    query: str,
    options: Mapping[str, Any],
    *,
    fields: Collection[str],
    kinds: Mapping[str, Kind],
    scheme: str,
    shown_url: str,
) -> dict[str, Any]:
    """The options of a URL's query string (parsed by their ``kinds``, a number by default)
    and the keyword ``options`` over them. An unknown keyword option raises ``TypeError``,
    an unknown URL option ``AdapterError`` naming ``shown_url`` (already redacted)."""
    unknown = set(options) - set(fields)
    if unknown:
        raise TypeError(f"unknown {scheme} options: {', '.join(sorted(unknown))}")
    from_url: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in fields:
            raise AdapterError(f"unknown {scheme} URL option {key!r}: {shown_url}")
        from_url[key] = parse(key, value, kinds.get(key, "number"))
    return {**from_url, **options}


def prefix(value: object, *, max_bytes: int, pattern: re.Pattern[str], allowed: str) -> str:
    """The ``prefix`` option: non-empty text of at most ``max_bytes`` matching ``pattern``
    (``allowed`` says what it may hold, for the message)."""
    checked = text("prefix", value, max_bytes=max_bytes, empty=False)
    if not pattern.match(checked):
        raise AdapterError(f"option prefix={checked!r} may hold only {allowed}")
    return checked
