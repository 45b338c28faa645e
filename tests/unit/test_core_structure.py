"""The core's seams are typed and layered: few ``Any``, no casts, no import going upwards."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "conveyor"

CORE = [
    *sorted(p.name for p in (SRC / "_consumers").glob("*.py")),
    "_plan.py",
    "_engine.py",
    "_control.py",
    "_workflow.py",
    "_definition.py",
    "_execution.py",
    "_waiting.py",
    "_client.py",
    "_attempts.py",
    "_registry.py",
    "_scheduling.py",
    "_types.py",
    "_markers.py",
    "_graph.py",
]
"""The modules of the engine's inner seam (issue 9: typed seams)."""

MAX_ANY = 5


def _path(name: str) -> Path:
    direct = SRC / name
    return direct if direct.exists() else SRC / "_consumers" / name


def _source(name: str) -> tuple[list[str], ast.Module]:
    text = _path(name).read_text()
    return text.splitlines(), ast.parse(text)


def _any_uses(name: str) -> list[int]:
    """Lines where ``Any`` is used (not imported)."""
    _, tree = _source(name)
    return [
        node.lineno
        for node in ast.walk(tree)
        if (isinstance(node, ast.Name) and node.id == "Any")
        or (isinstance(node, ast.Attribute) and node.attr == "Any")
    ]


def test_the_core_uses_at_most_five_any_each_explained() -> None:
    uses = {name: _any_uses(name) for name in CORE}
    total = sum(len(lines) for lines in uses.values())
    assert total <= MAX_ANY, uses
    for name, lines in uses.items():
        text, _ = _source(name)
        for line in lines:
            context = " ".join(text[max(0, line - 4) : line])
            assert "# Any:" in context, f"{name}:{line} uses Any without a '# Any: why' comment"


@pytest.mark.parametrize("name", CORE)
def test_the_core_has_no_casts_and_no_ignored_type_errors(name: str) -> None:
    text, tree = _source(name)
    casts = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == "cast")
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "cast")
        )
    ]
    ignores = [i + 1 for i, line in enumerate(text) if "type: ignore" in line]
    assert casts == [], f"{name}: cast at lines {casts}"
    assert ignores == [], f"{name}: type: ignore at lines {ignores}"


def test_the_any_counter_sees_an_any() -> None:
    # The counter itself has teeth: the definition's one Any (the connector function's
    # argument, the Workflow one layer up) is found.
    assert _any_uses("_definition.py")


# ---------------------------------------------------------------------------- layering

LAYERS: list[set[str]] = [
    {"_markers", "_graph", "_types"},
    {"_definition"},
    {"_writer", "_execution", "_attempts"},
    {"_engine", "_registry"},
    {"_consumers"},
    {"_plan"},
    {"_waiting", "_control", "_scheduling"},
    {"_workflow", "_client"},
    {"_builder"},
]
"""Bottom to top: a module may import from its own layer or below, never above."""

_LAYER_OF = {module: i for i, layer in enumerate(LAYERS) for module in layer}


def _core_imports(path: Path) -> set[str]:
    """Top-level conveyor modules ``path`` imports (also under ``TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    inside_consumers = path.parent.name == "_consumers"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0 and node.module:
            depth = node.level - (1 if inside_consumers else 0)
            if depth == 1:
                found.add(node.module.split(".")[0])
            elif inside_consumers and node.level == 1:
                found.add("_consumers")
    return found


def _layer_members() -> list[tuple[str, Path]]:
    members: list[tuple[str, Path]] = []
    for module in _LAYER_OF:
        if module == "_consumers":
            members += [("_consumers", p) for p in sorted((SRC / "_consumers").glob("*.py"))]
        else:
            members.append((module, SRC / f"{module}.py"))
    return members


@pytest.mark.parametrize(("module", "path"), _layer_members(), ids=lambda v: str(v))
def test_no_core_module_imports_one_above_it(module: str, path: Path) -> None:
    level = _LAYER_OF[module]
    above = {m for m in _core_imports(path) if _LAYER_OF.get(m, -1) > level}
    assert not above, f"{path.relative_to(SRC)} imports {sorted(above)}, which sit above it"
