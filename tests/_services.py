"""What a test does when the external service it needs is missing.

On a laptop a missing service (no server answering, no driver installed) skips the tests
that need it, with the reason; in CI (``CI=true``) it fails them, so a broken CI service
never passes as a green run of skipped tests. Each service has a pytest marker of the same
name (registered in ``pyproject.toml``), so ``-m "not postgres"`` leaves its tests out.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["in_ci", "unavailable"]


def in_ci() -> bool:
    """Whether this is a CI run (``CI=true``), where every service must be there."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(service: str, reason: str, *, module: bool = False) -> NoReturn:
    """Skip the current test (or, with ``module``, the importing module) because
    ``service`` is missing; with ``CI=true`` fail it instead."""
    if in_ci():
        pytest.fail(f"CI=true and {service} is unavailable: {reason}", pytrace=False)
    pytest.skip(f"{service} is unavailable: {reason}", allow_module_level=module)
