"""Fixtures for the unit tests: fresh memory adapters and a fake clock per test."""

from __future__ import annotations

import pytest

from ._support import Env, new_env


@pytest.fixture
def env() -> Env:
    return new_env()
