"""Mermaid ``stateDiagram-v2`` of a workflow's status graph, drawn as the original draws it.

from conveyor.diagram import mermaid, write_diagram
print(mermaid(workflow))            # or a Builder
write_diagram(workflow, "docs/orders.md", direction="TB")
"""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

from ._definition import Definition
from ._graph import Graph

if TYPE_CHECKING:
    from ._builder import Builder
    from ._workflow import Workflow

__all__ = ("Direction", "Drawable", "mermaid", "status_label", "write_diagram")

Direction = Literal["LR", "TB", "RL", "BT"]
_DIRECTIONS = ("LR", "TB", "RL", "BT")


def status_label(status: enum.IntEnum) -> str:
    """``EMAIL_SET`` → ``Email set``; ``EmailSet`` → ``Email set``."""
    name = status.name
    if "_" in name or name.isupper():
        words = [w for w in name.split("_") if w]
    else:
        words = re.findall(r"[A-Z]+(?=[A-Z][a-z]|\d|\b)|[A-Z]?[a-z]+|\d+", name) or [name]
    text = " ".join(w.lower() for w in words)
    return text[:1].upper() + text[1:]


Drawable = Union["Workflow[Any, Any]", "Builder[Any, Any]", "Definition[Any, Any]"]
"""What ``mermaid`` draws: a built workflow, a builder, or a definition."""


def _graph_of(workflow: object) -> tuple[str, Graph, type[enum.IntEnum]]:
    from ._builder import Builder
    from ._workflow import Workflow

    if isinstance(workflow, Workflow):
        workflow = workflow.definition
    if isinstance(workflow, Definition):
        return workflow.name, workflow.graph, workflow.status_type
    if isinstance(workflow, Builder):
        return workflow.name, workflow._graph.freeze(), workflow.status_type
    raise TypeError(f"cannot draw {workflow!r}: pass a conveyor Workflow or Builder")


def mermaid(workflow: Drawable, direction: Direction = "LR") -> str:
    """The diagram as a fenced Markdown ``mermaid`` block.

    One line per status (sorted by value, labelled with its name in words), then, per
    source status in the order the graph was declared, a single edge ``from-->to`` or,
    for several destinations, a ``<<choice>>`` state ``<from>_branching``.
    """
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(_DIRECTIONS)}, got {direction!r}")
    name, graph, status_type = _graph_of(workflow)
    lines = [
        "```mermaid",
        "---",
        f"title: Workflow diagram of {name}",
        "---",
        "stateDiagram-v2",
        f"\tdirection {direction}",
        "",
    ]
    for node in sorted(graph.nodes):
        lines.append(f"\t{node}: {status_label(status_type(node))}")
    for source in graph.sources():
        lines.append("")
        destinations = graph.destinations(source)
        if len(destinations) == 1:
            lines.append(f"\t{source}-->{destinations[0]}")
            continue
        choice = f"{source}_branching"
        lines.append(f"\tstate {choice} <<choice>>")
        lines.append(f"\t{source} --> {choice}")
        lines.extend(f"\t{choice} --> {to}" for to in destinations)
    lines.append("```")
    return "\n".join(lines) + "\n"


def write_diagram(workflow: Any, path: str | Path, direction: Direction = "LR") -> Path:
    """Write ``mermaid(workflow, direction)`` to ``path`` (creating parent directories)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(mermaid(workflow, direction))
    return target
