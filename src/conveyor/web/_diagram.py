"""A workflow's status graph as an SVG, laid out in layers by distance from the start.

Drawn on the server from the registered definition, so the UI needs no script to show it.
Every label goes through ``markupsafe.escape``.
"""

from __future__ import annotations

from collections import deque

from markupsafe import Markup, escape

from .._operator import WorkflowInfo

__all__ = ["svg"]

_W, _H = 150, 34  # a status box
_GX, _GY = 60, 18  # gaps between layers and between boxes of a layer
_PAD = 12


def _layers(info: WorkflowInfo) -> dict[int, int]:
    """Each status's layer: its distance (in edges) from the nearest starting status."""
    out: dict[int, list[int]] = {}
    for a, b in info.edges:
        out.setdefault(a, []).append(b)
    layer: dict[int, int] = {}
    queue = deque(n for n in (info.starting or info.nodes[:1]))
    for n in queue:
        layer[n] = 0
    while queue:
        n = queue.popleft()
        for m in out.get(n, ()):
            if m not in layer:
                layer[m] = layer[n] + 1
                queue.append(m)
    for n in info.nodes:  # unreachable statuses go after the rest
        layer.setdefault(n, max(layer.values(), default=-1) + 1)
    return layer


def svg(info: WorkflowInfo, current: int | None = None) -> Markup:
    """The diagram as inline SVG markup; ``current`` (a status) is marked."""
    layer = _layers(info)
    columns: dict[int, list[int]] = {}
    for n in sorted(layer, key=lambda n: (layer[n], n)):
        columns.setdefault(layer[n], []).append(n)
    tallest = max((len(c) for c in columns.values()), default=1)
    pos: dict[int, tuple[int, int]] = {}
    for col, nodes in columns.items():
        top = _PAD + (tallest - len(nodes)) * (_H + _GY) // 2
        for i, n in enumerate(nodes):
            pos[n] = (_PAD + col * (_W + _GX), top + i * (_H + _GY))
    width = _PAD * 2 + max(len(columns), 1) * (_W + _GX) - _GX
    height = _PAD * 2 + tallest * (_H + _GY) - _GY + 40
    parts = [
        f'<svg class="diagram" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(info.name)} status diagram">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>'
        "</defs>",
    ]
    for a, b in info.edges:
        if a not in pos or b not in pos:
            continue
        (ax, ay), (bx, by) = pos[a], pos[b]
        if layer[b] > layer[a]:
            x1, y1, x2, y2 = ax + _W, ay + _H // 2, bx, by + _H // 2
            mid = (x1 + x2) // 2
            d = f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"
        else:  # back or sideways: loop under the boxes
            x1, y1, x2, y2 = ax + _W // 2, ay + _H, bx + _W // 2, by + _H
            low = max(y1, y2) + 30
            d = f"M{x1},{y1} C{x1},{low} {x2},{low} {x2},{y2}"
        parts.append(f'<path class="edge" d="{d}" marker-end="url(#arrow)"/>')
    for n, (x, y) in pos.items():
        classes = ["status"]
        if n == current:
            classes.append("current")
        if n in info.terminal:
            classes.append("terminal")
        label = escape(info.status_name(n))
        kinds = ", ".join(
            mark
            for mark, group in (("step", info.steps), ("callback", info.callbacks))
            if n in group
        )
        title = escape(f"{info.status_name(n)} ({n}){': ' + kinds if kinds else ''}")
        parts.append(
            f'<g class="{" ".join(classes)}" data-status="{n}"><title>{title}</title>'
            f'<rect x="{x}" y="{y}" width="{_W}" height="{_H}" rx="6"/>'
            f'<text x="{x + _W // 2}" y="{y + _H // 2 + 5}" text-anchor="middle">{label}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
