"""Lay a flow's static graph out as text: layers by depth, branches side by side, box-drawing edges.

Pure functions (no Textual): :func:`layout` returns a :class:`DagPicture` whose ``lines`` are Textual
content markup (colours are theme variables, so light and dark terminals both work) and whose
``boxes`` map each step to its rectangle, for mouse hit-testing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from rich.markup import escape

from ..graph import FlowGraph

BOX_ROWS = 4
GAP_ROWS = 2
COL_GAP = 2
MIN_BOX = 14
MAX_BOX = 26

U, D, L, R = 1, 2, 4, 8
JUNCTIONS = {
    U: "│",
    D: "│",
    U | D: "│",
    L: "─",
    R: "─",
    L | R: "─",
    D | R: "┌",
    D | L: "┐",
    U | R: "└",
    U | L: "┘",
    U | D | R: "├",
    U | D | L: "┤",
    D | L | R: "┬",
    U | L | R: "┴",
    U | D | L | R: "┼",
}

STATUS_STYLE = {
    "succeeded": "$success",
    "failed": "$error",
    "oom": "$error",
    "timeout": "$error",
    "running": "$warning",
    "pending": "$secondary",
    "cloned": "$success 70%",
    "cancelled": "$text-muted",
    "crashed": "$error",
    "unfinished": "$error",
    "not taken": "$text-muted 60%",
}
STATUS_GLYPH = {
    "succeeded": "✔",
    "failed": "✘",
    "oom": "✘",
    "timeout": "✘",
    "running": "▶",
    "pending": "…",
    "cloned": "↺",
    "cancelled": "■",
    "crashed": "†",  # its run's runtime is gone while the step ran (workbench.liveness)
    "unfinished": "†",
    "not taken": "⊘",
}
TAKEN_EDGE = "$success"  # a switch's edge to the case the shown run took
BACKEND_SHORT = {"kubernetes": "k8s"}


@dataclass
class DagPicture:
    lines: list[str]
    boxes: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)  # x, y, w, h
    width: int = 0


def layers_of(graph: FlowGraph) -> list[list[str]]:
    """Steps grouped by longest-path depth from start; each layer ordered by its parents' positions."""
    order = graph.topological()
    depth: dict[str, int] = {}
    for name in order:
        step = graph.steps[name]
        parents = [p for p in step.in_steps if p in depth]
        depth[name] = 1 + max((depth[p] for p in parents), default=-1)
    count = 1 + max(depth.values(), default=-1)
    layers: list[list[str]] = [[] for _ in range(count)]
    for name in order:
        layers[depth[name]].append(name)
    return layers


def resources_label(settings) -> str:
    if settings is None:
        return ""
    backend = BACKEND_SHORT.get(settings.backend, settings.backend)
    from ..units import format_memory

    parts = [backend, f"{settings.cpu:g}c", format_memory(settings.memory)]
    if settings.gpu:
        parts.append(f"{settings.gpu}gpu")
    return " ".join(parts)


def layout(
    graph: FlowGraph,
    statuses: Optional[dict[str, str]] = None,
    settings: Optional[dict] = None,
    selected: Optional[str] = None,
    counts: Optional[dict[str, int]] = None,
) -> DagPicture:
    """``counts``: tasks per step in the shown run; a step with more than one (a foreach body) shows ×N."""
    statuses = dict(statuses or {})
    counts = counts or {}
    taken = _switch_cases_taken(graph, statuses)
    settings = settings or {}
    if not graph.steps:
        return DagPicture(["(no steps)"])
    layers = layers_of(graph)
    depth = {n: i for i, layer in enumerate(layers) for n in layer}
    labels = {n: resources_label(settings.get(n)) for n in graph.steps}
    width = max(
        MIN_BOX,
        *(
            min(
                MAX_BOX,
                max(len(n) + 6 + (len(str(counts.get(n, ""))) + 2 if counts.get(n, 0) > 1 else 0), len(labels[n]) + 4),
            )
            for n in graph.steps
        ),
    )

    # Long edges (across more than one layer) get a pass-through slot in every layer they cross.
    slots: list[list[tuple[str, str]]] = [[("step", n) for n in layer] for layer in layers]
    edges: list[tuple[tuple[str, str], tuple[str, str], int]] = []  # (from slot, to slot, layer of from)
    for name in graph.topological():
        for child in graph.steps[name].out:
            if child not in depth or child == name:  # a recursive switch's loop is a mark on its box
                continue
            a, b = depth[name], depth[child]
            prev = ("step", name)
            for mid in range(a + 1, b):
                via = ("via", f"{name}->{child}")
                slots[mid].append(via)
                edges.append((prev, via, mid - 1))
                prev = via
            edges.append((prev, ("step", child), b - 1))

    # Order each layer by the mean position of its parents (a barycentre pass keeps edges short).
    pos: dict[tuple[str, str], float] = {}
    for i, layer in enumerate(slots):
        if i:

            def bary(slot, i=i):
                ps = [pos[src] for src, dst, _ in edges if dst == slot and src in pos]
                return sum(ps) / len(ps) if ps else 0.0

            layer.sort(key=bary)
        for j, slot in enumerate(layer):
            pos[slot] = j

    total_cols = max(len(layer) for layer in slots)
    pitch = width + COL_GAP
    canvas_w = total_cols * pitch
    canvas_h = len(slots) * BOX_ROWS + (len(slots) - 1) * GAP_ROWS
    chars = [[" "] * canvas_w for _ in range(canvas_h)]
    styles: list[list[Optional[str]]] = [[None] * canvas_w for _ in range(canvas_h)]
    masks = [[0] * canvas_w for _ in range(canvas_h)]
    centre: dict[tuple[str, str], int] = {}
    boxes: dict[str, tuple[int, int, int, int]] = {}

    for i, layer in enumerate(slots):
        offset = (total_cols - len(layer)) * pitch // 2  # centre narrow layers
        top = i * (BOX_ROWS + GAP_ROWS)
        for j, slot in enumerate(layer):
            x = offset + j * pitch
            centre[slot] = x + width // 2
            kind, name = slot
            if kind == "via":
                for r in range(BOX_ROWS):
                    masks[top + r][centre[slot]] |= U | D
                continue
            boxes[name] = (x, top, width, BOX_ROWS)
            status = statuses.get(name)
            style = STATUS_STYLE.get(status or "", "$foreground")
            if name == selected:
                style += " reverse"
            glyph = STATUS_GLYPH.get(status or "", "○")
            step = graph.steps[name]
            kind_mark = {"foreach": " ⑃", "split": " ⑂", "join": " ⋈", "switch": " ◇"}.get(step.kind, "")
            if step.is_recursive:
                kind_mark += "↻"
            many = f" ×{counts[name]}" if counts.get(name, 0) > 1 else ""
            title = f"{glyph} {name}{kind_mark}{many}"[: width - 2]
            label = labels[name][: width - 2]
            rows = [
                "┌" + "─" * (width - 2) + "┐",
                "│" + title.ljust(width - 2) + "│",
                "│" + label.ljust(width - 2) + "│",
                "└" + "─" * (width - 2) + "┘",
            ]
            for r, row in enumerate(rows):
                for c, ch in enumerate(row):
                    chars[top + r][x + c] = ch
                    styles[top + r][x + c] = (
                        style
                        if (r == 1 or name == selected)
                        else (style if r in (0, 3) or c in (0, width - 1) else "$text-muted")
                    )

    hot: set[tuple[int, int]] = set()  # cells of the edges a switch took
    for src, dst, layer_i in edges:
        x1, x2 = centre[src], centre[dst]
        if (src[1], dst[1]) in taken:
            cells = [(layer_i * (BOX_ROWS + GAP_ROWS) + BOX_ROWS, x) for x in range(min(x1, x2), max(x1, x2) + 1)]
            hot.update(cells + [(layer_i * (BOX_ROWS + GAP_ROWS) + BOX_ROWS + 1, x2)])
        y0 = layer_i * (BOX_ROWS + GAP_ROWS) + BOX_ROWS  # first gap row
        mid = y0
        if x1 == x2:
            masks[mid][x1] |= U | D
        else:
            step_dir = 1 if x2 > x1 else -1
            masks[mid][x1] |= U | (R if step_dir > 0 else L)
            for x in range(x1 + step_dir, x2, step_dir):
                masks[mid][x] |= L | R
            masks[mid][x2] |= D | (L if step_dir > 0 else R)
        masks[y0 + 1][x2] |= U | D
        if dst[0] == "step":
            chars[y0 + 1][x2] = "▼"

    lines = []
    for y in range(canvas_h):
        out: list[str] = []
        run_text: list[str] = []
        run_style: Optional[str] = None

        def flush():  # called within this row's loop: late binding of the row's variables is intended
            if run_text:  # noqa: B023
                text = escape("".join(run_text))  # noqa: B023
                out.append(f"[{run_style}]{text}[/]" if run_style else text)  # noqa: B023

        for x in range(canvas_w):
            ch, st = chars[y][x], styles[y][x]
            if ch == " " and masks[y][x]:
                ch, st = JUNCTIONS[masks[y][x]], TAKEN_EDGE if (y, x) in hot else "$text-muted"
            elif ch == "▼":
                st = TAKEN_EDGE if (y, x) in hot else "$text-muted"
            if st != run_style:
                flush()
                run_style, run_text = st, []
            run_text.append(ch)
        flush()
        lines.append("".join(out).rstrip())
    return DagPicture(lines, boxes, canvas_w)


def _switch_cases_taken(graph: FlowGraph, statuses: dict[str, str]) -> set[tuple[str, str]]:
    """(switch, case) edges the shown run took. A finished switch's cases that never ran are marked
    ``not taken`` in ``statuses`` (drawn muted), so a reader sees which branch the run went down."""
    taken: set[tuple[str, str]] = set()
    for name, step in graph.steps.items():
        if step.kind != "switch" or statuses.get(name) not in ("succeeded", "cloned"):
            continue
        for case in step.out:
            if case == name:
                continue
            if case in statuses:
                taken.add((name, case))
    for name, step in graph.steps.items():
        if step.kind == "switch" and statuses.get(name) in ("succeeded", "cloned") and any(s == name for s, _ in taken):
            for case in step.out:
                if case != name and case not in statuses:
                    statuses[case] = "not taken"
    return taken


def step_at(picture: DagPicture, x: int, y: int) -> Optional[str]:
    for name, (bx, by, bw, bh) in picture.boxes.items():
        if bx <= x < bx + bw and by <= y < by + bh:
            return name
    return None
