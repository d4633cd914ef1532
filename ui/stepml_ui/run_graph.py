"""A run drawn like the Step Functions console's graph view: the ASL's states and transitions,
each state coloured by what it did in this run (Graphviz DOT, rendered in the browser)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

#: Fill colours by state status; states the run never entered stay grey.
STATUS_COLOURS = {
    "SUCCEEDED": "#c8e6c9",
    "FAILED": "#ffcdd2",
    "RUNNING": "#bbdefb",
    "NOT RUN": "#eeeeee",
}
_BORDERS = {"SUCCEEDED": "#2e7d32", "FAILED": "#c62828", "RUNNING": "#1565c0", "NOT RUN": "#9e9e9e"}
_SHAPES = {"Succeed": "oval", "Fail": "oval"}


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def state_statuses(states: list[dict[str, Any]]) -> dict[str, str]:
    """The last status of each state the run entered (a retried or re-entered state: its last)."""
    return {state["name"]: state["status"] for state in states}


def transitions(definition: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every (from, to, kind) edge of a definition; kind is next, choice, default or catch."""
    edges: list[tuple[str, str, str]] = []
    for name, state in definition.get("States", {}).items():
        if state.get("Next"):
            edges.append((name, state["Next"], "next"))
        for choice in state.get("Choices", []):
            if choice.get("Next"):
                edges.append((name, choice["Next"], "choice"))
        if state.get("Default"):
            edges.append((name, state["Default"], "default"))
        for catch in state.get("Catch", []):
            if catch.get("Next"):
                edges.append((name, catch["Next"], "catch"))
    return list(dict.fromkeys(edges))


def run_dot(definition: dict[str, Any], states: list[dict[str, Any]]) -> str:
    """DOT source for ``definition`` with the run's ``states`` (from ``Stack.run``) coloured in."""
    statuses = state_statuses(states)
    durations = {s["name"]: s.get("duration_s") for s in states}
    taken = {(a["name"], b["name"]) for a, b in pairwise(states)}
    lines = [
        "digraph run {",
        '  graph [rankdir=TB, fontname="Helvetica", nodesep=0.3, ranksep=0.3, bgcolor="transparent", size="7,8!", ratio=compress];',
        '  node [fontname="Helvetica", fontsize=12, margin="0.15,0.06", style="filled,rounded", shape=box, penwidth=1.6];',
        '  edge [fontname="Helvetica", fontsize=9, color="#757575", arrowsize=0.7];',
        ('  "__start" [label="Start", shape=circle, style=filled, fillcolor="#424242", fontcolor=white, '
         'width=0.45, fixedsize=true];'),
    ]
    for name, state in definition.get("States", {}).items():
        status = statuses.get(name, "NOT RUN")
        seconds = durations.get(name)
        # "\\n" is DOT's line break inside a label; escape the name, then add the duration line.
        label = _quoted(name) if seconds is None else _quoted(name)[:-1] + f'\\n{seconds:.1f} s"'
        shape = _SHAPES.get(state.get("Type", ""), "box")
        style = {"oval": '"filled"', "box": '"filled,rounded"'}[shape]
        if state.get("Type") == "Choice":
            style = '"filled,diagonals"'
        lines.append(
            f"  {_quoted(name)} [label={label}, "
            f"shape={shape}, style={style}, fillcolor={_quoted(STATUS_COLOURS[status])}, "
            f"color={_quoted(_BORDERS[status])}, tooltip={_quoted(f'{name}: {status}')}];"
        )
    start = definition.get("StartAt")
    if start:
        lines.append(f'  "__start" -> {_quoted(start)} [color="#424242", penwidth=1.6];')
    for source, target, kind in transitions(definition):
        if kind == "catch" and (source, target) not in taken:
            # Every task catches into the same two error states: drawing all those edges buries
            # the story, so only an error path this run actually took is drawn.
            continue
        attributes = []
        if kind == "catch":
            attributes += ["style=dashed", 'label="error"', 'fontcolor="#c62828"']
        elif kind == "default":
            attributes.append('label="otherwise"')
        if (source, target) in taken:
            attributes += ['color="#424242"', "penwidth=2.2"]
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"  {_quoted(source)} -> {_quoted(target)}{suffix};")
    terminals = [n for n, st in definition.get("States", {}).items() if st.get("Type") in ("Succeed", "Fail")]
    if terminals:
        lines.append("  { rank=sink; " + " ".join(_quoted(n) for n in terminals) + " }")
    lines.append("}")
    return "\n".join(lines)
