"""Type completeness of the public surface: ``pyright --verifytypes conveyor``.

pyright counts the exported symbols of every public module whose types are fully known
(declared, not inferred, and not reaching an unannotated third-party type). The score is
pinned below; it may only rise. The modules that workflow and adapter authors import
(``FULLY_TYPED``) must be complete already.

pyright comes with the ``dev`` extra (the PyPI package fetches its Node.js build from
npm on first use). Without it the test is skipped, except with ``CI=true``: then it fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

# pyright runs as a subprocess. The first run downloads its Node.js build; later runs
# take a few seconds.
pytestmark = [pytest.mark.processes, pytest.mark.timeout(300)]

PINNED_SCORE = 1.0
"""The completeness score last measured: 100 % (every exported symbol has a known type).
It may only rise; at 1.0 it must stay there."""

FULLY_TYPED = (
    "conveyor",
    "conveyor.abc",
    "conveyor.abc.kit",
    "conveyor.adaptertest",
    "conveyor.diagram",
    "conveyor.testing",
)
"""Public modules every exported symbol of which must have a known type."""


def _verifytypes() -> dict[str, Any]:
    if importlib.util.find_spec("pyright") is None:
        reason = "pyright is not installed (pip install -e '.[dev]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    # pyright finds the environment (and so the installed conveyor) through the first
    # python on PATH; --pythonpath is not honoured by --verifytypes.
    env = dict(
        os.environ,
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pyright", "--verifytypes", "conveyor", "--outputjson"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        report: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"pyright gave no report (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return report


@pytest.fixture(scope="module")
def completeness() -> dict[str, Any]:
    result: dict[str, Any] = _verifytypes()["typeCompleteness"]
    return result


def _incomplete(completeness: dict[str, Any]) -> list[str]:
    return sorted(
        symbol["name"]
        for symbol in completeness["symbols"]
        if symbol["isExported"] and (not symbol["isTypeKnown"] or symbol["isTypeAmbiguous"])
    )


def test_pyright_checks_this_checkout(completeness: dict[str, Any]) -> None:
    assert Path(completeness["packageRootDirectory"]) == ROOT / "src" / "conveyor"
    assert completeness["pyTypedPath"], "no py.typed: pyright would score nothing"


def test_completeness_score_is_at_least_the_pinned_score(completeness: dict[str, Any]) -> None:
    score = completeness["completenessScore"]
    missing = "\n".join(_incomplete(completeness))
    assert score >= PINNED_SCORE, (
        f"type completeness fell to {score:.1%} (pinned: {PINNED_SCORE:.1%}); "
        f"exported symbols whose type is not fully known:\n{missing}"
    )


def test_authors_modules_are_fully_typed(completeness: dict[str, Any]) -> None:
    modules: list[str] = sorted((m["name"] for m in completeness["modules"]), key=len, reverse=True)
    assert set(FULLY_TYPED) <= set(modules), "a module of FULLY_TYPED is gone or renamed"

    def module_of(symbol: str) -> str:
        return next(m for m in modules if symbol.startswith(m + "."))

    incomplete = [s for s in _incomplete(completeness) if module_of(s) in FULLY_TYPED]
    assert not incomplete, "exported symbols whose type is not fully known:\n" + "\n".join(
        incomplete
    )
