"""``fnv1a64``: the string hash every process agrees on."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conveyor.abc.kit import fnv1a64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", 0xCBF29CE484222325, id="empty-is-the-offset-basis"),
        pytest.param("a", 0xAF63DC4C8601EC8C, id="one-byte"),
        pytest.param("foobar", 0x85944171F73967E8, id="foobar"),
    ],
)
def test_the_hash_is_the_standard_unsigned_fnv1a_64(text: str, expected: int) -> None:
    assert fnv1a64(text) == expected


def test_the_hash_covers_the_utf8_bytes_and_stays_in_64_bits() -> None:
    values = [fnv1a64(text) for text in ("é", "e\u0301", "日本", "x" * 1000)]
    assert all(0 <= v < 1 << 64 for v in values)
    assert values[0] != values[1]  # the bytes count, not what they look like


@pytest.mark.processes
def test_another_interpreter_with_another_hash_seed_computes_the_same() -> None:
    code = "from conveyor.abc.kit import fnv1a64; print(fnv1a64('wf-1-consumer-2-of-4'))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert int(out.stdout) == fnv1a64("wf-1-consumer-2-of-4")
