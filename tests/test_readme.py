"""The README's example is the shipped example, and it runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_getting_started_is_the_example_file() -> None:
    example = (ROOT / "examples" / "getting_started.py").read_text()
    assert example in _python_blocks((ROOT / "README.md").read_text())


@pytest.mark.processes
def test_getting_started_example_runs_as_written(tmp_path: Path) -> None:
    # Given the README example copied into a fresh file
    script = tmp_path / "file.py"
    script.write_text((ROOT / "examples" / "getting_started.py").read_text())
    # When a newcomer runs it with `python file.py`
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    # Then it completes the run
    assert proc.returncode == 0, proc.stderr
    assert "DONE Completed User(uid='user-42', email='user-42@example.com') version=3" in (
        proc.stdout
    )


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    command = (
        "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && .venv/bin/python -m pytest"
    )
    assert command in readme
    assert command in (ROOT / ".ci" / "run").read_text()
