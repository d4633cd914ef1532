"""How the ``stepml`` command shows things: the console, run and version tables, JSON output.

The commands (:mod:`stepml.cli.commands`) and the demo (:mod:`stepml.cli.demo`) print through
these; nothing here talks to AWS except :func:`follow`, which waits on the stack it is given.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from stepml.contracts import Feature, HistoryPage, ListedVersion
from stepml.describe import metric
from stepml.runs import LEFT_OUT_REASONS, run_outcome, validation_findings
from stepml.stack import Stack

# Tables of metrics need room: at least 120 columns even when the output is piped.
console = Console(width=max(Console().width, 120))
OUTCOME_STYLE = {"champion": "green", "candidate": "yellow", "duplicate": "cyan", "running": "yellow"}
STATUS_STYLE = {"SUCCEEDED": "green", "FAILED": "red", "RUNNING": "yellow", "TIMED_OUT": "red", "ABORTED": "red"}


#: Validation warnings (and columns left out) printed with a run; ``runs show --json`` has them all.
WARNINGS_SHOWN = 5
LEFT_OUT_SHOWN = 8


def emit_json(value: Any) -> None:
    # Text as written (é, not \u00e9): a person reads it, and JSON parsers take either.
    click.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def follow(stack: Stack, key: str, since: datetime, timeout: float) -> dict[str, Any]:
    """Wait for the run of an upload with a live status line, then print its states."""
    started = time.monotonic()
    with console.status("waiting for the run to start…") as status:

        def progress(state: str, states: list[dict[str, Any]]) -> None:
            current = states[-1]["name"] if states else "-"
            status.update(f"[bold]{state}[/bold] · {current} · {time.monotonic() - started:.0f} s")

        run = stack.wait_for_run(key, since, timeout=timeout, on_progress=progress)
    print_run(run, stack.validation_report(run))
    return run


def print_validation(run_name: str, report: dict[str, Any] | None) -> None:
    """The validation report's warnings, at most :data:`WARNINGS_SHOWN`, and the columns left out of
    training with why; nothing without a report (a rejected run's error is in its outcome line)."""
    findings = validation_findings(report)
    if findings is None:
        return
    warnings, left_out = findings["warnings"], findings["dropped_columns"]
    if warnings:
        console.print(f"[yellow]validation warnings[/yellow] ({len(warnings)}):")
        listed = Table.grid(padding=(0, 1))  # a long warning wraps under its own text, not under the dash
        listed.add_column(min_width=3, justify="right")
        listed.add_column()
        for warning in warnings[:WARNINGS_SHOWN]:
            listed.add_row("-", Text(warning))
        console.print(listed)
        if len(warnings) > WARNINGS_SHOWN:
            console.print(f"  … and {len(warnings) - WARNINGS_SHOWN} more: stepml runs show {run_name} --json",
                          markup=False, highlight=False)
    if left_out:
        named = [f"{name} ({LEFT_OUT_REASONS.get(why, why)})" for name, why in list(left_out.items())[:LEFT_OUT_SHOWN]]
        more = f", … and {len(left_out) - LEFT_OUT_SHOWN} more" if len(left_out) > LEFT_OUT_SHOWN else ""
        console.print(f"left out of training: {', '.join(named)}{more}", markup=False, highlight=False)


def print_run(run: dict[str, Any], report: dict[str, Any] | None = None) -> None:
    """A run's states, then its validation warnings (``report``: its validation report, if any),
    then one line for how it ended (last, for scripts that read only that line)."""
    style = STATUS_STYLE.get(run["status"], "white")
    console.print(f"run [bold]{run['name']}[/bold]: [{style}]{run['status']}[/{style}] in {run['duration_s']:.1f} s  ({run['key']})")
    table = Table("state", "type", "status", "seconds", "retries", "error")
    for state in run["states"]:
        s_style = STATUS_STYLE.get(state["status"], "white")
        error = f"{state['error']}: {state['cause']}" if state["error"] else ""
        duration = f"{state['duration_s']:.2f}" if state["duration_s"] is not None else ""
        table.add_row(state["name"], state["type"], f"[{s_style}]{state['status']}[/{s_style}]", duration,
                      str(state["retries"] or ""), error)
    console.print(table)
    print_validation(run["name"], report)
    outcome = run.get("outcome") or run_outcome(run)
    style = OUTCOME_STYLE.get(outcome["outcome"], "red")
    # Rich markup off for the text: a cause may hold brackets ([...]) that are not markup.
    console.print(f"[{style}]{outcome['outcome'].replace('_', ' ')}[/{style}]: ", end="")
    console.print(outcome["summary"], markup=False, highlight=False)


def may_be_missing(spec: Feature) -> str:
    """Whether a request may leave the feature out (as recorded with the version; '?' before that)."""
    if "nullable" not in spec:
        return "?"
    if not spec["nullable"]:
        return "no"
    return "yes" if spec.get("missing_in_training") else "yes (never in training: warns)"


def print_history(name: str, page: HistoryPage) -> None:
    """A page of the champion history, newest first, and how to see the older entries."""
    entries = page["entries"]
    if not entries:
        console.print(f"no champion changes recorded for {name!r}" if page["total"] == 0 else
                      f"no champion changes of {name!r} before that one ({page['total']} in all)")
        return
    table = Table("#", "time", "action", "from", "to", "actor", "gate", "reason",
                  title=f"champion history of {name}, newest first ({len(entries)} of {page['total']})")
    for entry in entries:
        gate = entry.get("gate")  # promotions record the gate's decision; rollbacks are not gated
        verdict = "" if not gate else "refused, forced" if entry.get("forced") else "passed"
        table.add_row(str(entry["seq"]), entry["time"], entry["action"], str(entry["from"] or "-"), str(entry["to"]),
                      entry["actor"], verdict, entry["reason"])
    console.print(table)
    older = page["next_before"]
    if older is not None:
        # entries are numbered from 1 without gaps: those below next_before are all older ones
        console.print(f"{older - 1} older {'entry' if older == 2 else 'entries'}: "
                      f"stepml models history {name} --before {older}")


def print_versions(name: str, versions: list[ListedVersion]) -> None:
    metric_names = list(versions[-1]["evaluation"]["metrics"])
    table = Table("version", "aliases", *metric_names, "baseline " + versions[-1]["evaluation"]["primary_metric"],
                  "train rows", "registered", title=f"model {name}")
    for meta in versions:
        evaluation = meta["evaluation"]
        table.add_row(
            str(meta["version"]), ", ".join(meta.get("aliases", [])),
            *(metric(evaluation["metrics"].get(m)) for m in metric_names),
            metric(evaluation["baseline"].get(evaluation["primary_metric"])),
            f"{meta['train_rows']:,}", str(meta.get("registered", "")),
        )
    console.print(table)


def _figure(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def print_monitor_report(report: dict[str, Any]) -> None:
    """A monitor report (``stepml monitor``): volume, latency, features worst first, performance,
    alarms."""
    window, volume, latency = report["window"], report["volume"], report["latency_ms"]
    console.print(f"[bold]{report['model']}[/bold] champion version {report['champion_version']}, "
                  f"{window['start']} to {window['end']}")
    console.print(f"Traffic: {volume['requests']} requests, {volume['rows']} rows, {volume['errors']} errors; "
                  f"latency p50 {_figure(latency['p50'])} ms, p99 {_figure(latency['p99'])} ms")
    if report.get("insufficient_data"):
        console.print("[yellow]Too few rows in the window for drift alarms (monitoring.min_rows).[/yellow]")
    if report.get("note"):
        console.print(f"[yellow]{report['note']}[/yellow]")
    if report["features"]:
        table = Table(title="Features, worst first")
        for column in ("feature", "kind", "PSI", "distance", "missing", "unseen", "out of range", "drift"):
            table.add_column(column, justify="left" if column in ("feature", "kind") else "right")
        for feature in report["features"]:
            table.add_row(
                feature["name"], feature["kind"], _figure(feature["psi"]),
                f"{_figure(feature['distance'])} ({'W' if feature['distance_name'] == 'wasserstein' else 'JS'})",
                _figure(feature["missing_rate"]["current"]), _figure(feature["unseen_rate"]),
                _figure(feature["out_of_range_rate"]),
                "[red]DRIFT[/red]" if feature["drifted"] else "ok",
            )
        console.print(table)
    prediction = report["prediction"]
    console.print(f"Prediction PSI: {_figure(prediction.get('psi'))}"
                  f"{' [red]DRIFT[/red]' if prediction.get('drifted') else ''}")
    performance = report["performance"]
    table = Table(title=f"Performance ({performance['metric']})")
    for column in ("version", "test (reference)", "estimated", "true", "labelled rows"):
        table.add_column(column, justify="right")
    for version, figures in performance["by_version"].items():
        reference = performance["reference"] if version == str(report["champion_version"]) else None
        table.add_row(version, _figure(reference), _figure(figures["estimated"]), _figure(figures["true"]),
                      str(figures["labelled_rows"]))
    console.print(table)
    alarms = report["alarms"]
    if not alarms:
        console.print("[green]No alarms.[/green]")
    for alarm in alarms:
        console.print(f"[red]ALARM[/red] {alarm['kind']}: {alarm['message']}")
    for problem in report.get("problems", []):
        console.print(f"[yellow]skipped:[/yellow] {problem}")
