"""Type tests: ``tests/typing/good_*.py`` type-check, and every known-wrong use is rejected.

mypy runs once, with the project's configuration (``--strict``), over all the files in
``tests/typing``. A good file must have no error at all. Each ``bad_*.py`` file holds one
wrong use; its lines marked ``# E: <code>`` (several codes for several errors on the line)
must fail with exactly those error codes, and no other line may fail. The bad files are
excluded from the project's normal ``mypy`` run (``[tool.mypy] exclude``).

The good files also run: their ``assert_type`` calls are ordinary calls at runtime.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
TYPING = ROOT / "tests" / "typing"
GOOD = sorted(TYPING.glob("good_*.py"))
BAD = sorted(TYPING.glob("bad_*.py"))

_MARK = re.compile(r"#\s*E:\s*(?P<codes>[a-z][a-z-]*(?:[\s,]+[a-z][a-z-]*)*)\s*$")
_ERROR = re.compile(
    r"^(?P<path>[^:\n]+):(?P<line>\d+): error: (?P<message>.*?)(?:  \[(?P<code>[a-z-]+)\])?$"
)

Errors = dict[str, Counter[tuple[int, str]]]
"""Per file (relative to the root, POSIX), how often each (line, error code) occurred."""


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def expected_errors(path: Path) -> Counter[tuple[int, str]]:
    """The ``# E: <code> ...`` marks of a file, as (line, code) counts."""
    expected: Counter[tuple[int, str]] = Counter()
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        mark = _MARK.search(text)
        if mark is not None:
            for code in re.split(r"[\s,]+", mark["codes"]):
                expected[(number, code)] += 1
    return expected


def parse_errors(report: str) -> Errors:
    """mypy's ``path:line: error: message  [code]`` lines, counted per file."""
    errors: Errors = {}
    for text in report.splitlines():
        found = _ERROR.match(text)
        if found is not None:
            key = (int(found["line"]), found["code"] or "")
            errors.setdefault(Path(found["path"]).as_posix(), Counter())[key] += 1
    return errors


@pytest.fixture(scope="module")
def mypy_report() -> tuple[str, Errors]:
    api = pytest.importorskip("mypy.api", reason="mypy is not installed (pip install -e '.[dev]')")
    files = [_relative(p) for p in (*GOOD, *BAD, *TYPING.glob("_*.py"))]
    with contextlib.chdir(ROOT):
        stdout, stderr, status = api.run(
            ["--config-file", "pyproject.toml", "--no-pretty", "--no-error-summary", *files]
        )
    assert status in (0, 1), f"mypy crashed ({status}):\n{stdout}\n{stderr}"
    return stdout, parse_errors(stdout)


def test_there_are_good_files_and_one_bad_file_per_case() -> None:
    assert GOOD, "no tests/typing/good_*.py"
    assert len(BAD) >= 10, "the known-wrong cases went missing"
    for path in BAD:
        assert expected_errors(path), f"{_relative(path)} has no '# E: <code>' mark"


def test_only_the_marked_files_fail(mypy_report: tuple[str, Errors]) -> None:
    report, errors = mypy_report
    unexpected = sorted(set(errors) - {_relative(p) for p in BAD})
    assert not unexpected, f"errors outside the bad files: {unexpected}\n{report}"


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_good_file_type_checks(path: Path, mypy_report: tuple[str, Errors]) -> None:
    report, errors = mypy_report
    assert not errors.get(_relative(path)), report


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_known_wrong_use_is_rejected(path: Path, mypy_report: tuple[str, Errors]) -> None:
    report, errors = mypy_report
    got = errors.get(_relative(path), Counter())
    lines = [line for line in report.splitlines() if line.startswith(_relative(path) + ":")]
    assert got == expected_errors(path), "\n".join(lines) or "mypy accepted it"


def test_the_marks_are_read_as_written(tmp_path: Path) -> None:
    sample = tmp_path / "bad_sample.py"
    sample.write_text("x = 1\ny: str = x  # E: assignment\nf(1, 2)  # E: arg-type, name-defined\n")
    assert expected_errors(sample) == Counter(
        {(2, "assignment"): 1, (3, "arg-type"): 1, (3, "name-defined"): 1}
    )
    report = "a.py:2: error: Incompatible types  [assignment]\na.py:2: note: see here\n"
    assert parse_errors(report) == {"a.py": Counter({(2, "assignment"): 1})}


@contextlib.contextmanager
def _imported(path: Path) -> Iterator[ModuleType]:
    name = f"_typing_test_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


async def test_the_good_workflow_runs() -> None:
    with _imported(TYPING / "good_workflow.py") as module:
        await module.main()


def test_the_good_shapes_build() -> None:
    with _imported(TYPING / "good_shapes.py") as module:
        assert module.shapes().name == "messages"
