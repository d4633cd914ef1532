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

from stepml.contracts import AutoChoiceSummary, Feature, HistoryPage, ListedVersion, TuningSummary
from stepml.model_family import FOREST_TREES
from stepml.runs import run_outcome
from stepml.stack import Stack

# Tables of metrics need room: at least 120 columns even when the output is piped.
console = Console(width=max(Console().width, 120))
OUTCOME_STYLE = {"champion": "green", "candidate": "yellow", "duplicate": "cyan", "running": "yellow"}
STATUS_STYLE = {"SUCCEEDED": "green", "FAILED": "red", "RUNNING": "yellow", "TIMED_OUT": "red", "ABORTED": "red"}


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def follow(stack: Stack, key: str, since: datetime, timeout: float) -> dict[str, Any]:
    """Wait for the run of an upload with a live status line, then print its states."""
    started = time.monotonic()
    with console.status("waiting for the run to start…") as status:

        def progress(state: str, states: list[dict[str, Any]]) -> None:
            current = states[-1]["name"] if states else "-"
            status.update(f"[bold]{state}[/bold] · {current} · {time.monotonic() - started:.0f} s")

        run = stack.wait_for_run(key, since, timeout=timeout, on_progress=progress)
    print_run(run)
    return run


def print_run(run: dict[str, Any]) -> None:
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
    outcome = run.get("outcome") or run_outcome(run)
    style = OUTCOME_STYLE.get(outcome["outcome"], "red")
    # Rich markup off for the text: a cause may hold brackets ([...]) that are not markup.
    console.print(f"[{style}]{outcome['outcome'].replace('_', ' ')}[/{style}]: ", end="")
    console.print(outcome["summary"], markup=False, highlight=False)


def metric(value: Any) -> str:
    return "" if value is None else f"{value:,.4f}" if abs(value) < 100 else f"{value:,.0f}"


def validated_on(folds: int, rows: int) -> str:
    """Where a choice was scored: k-fold cross-validation (every row out of fold) or one split."""
    return f"{folds}-fold cross-validation ({rows:,} rows, each out of fold)" if folds > 1 else f"{rows:,} validation rows"


def describe_auto_choice(choice: AutoChoiceSummary, primary_metric: str | None) -> str:
    """One line on what the auto recipe chose on its validation split (a version's ``auto_choice``)."""
    family = choice["family"]
    parts = [f"model: {family}"]
    if family == "forest":
        parts.append(f"{choice.get('forest_trees', FOREST_TREES)} extremely randomised trees")
    elif family != "linear":
        rounds = choice.get("rounds")
        parts.append(f"{rounds} boosting rounds" if rounds is not None else "the recipe's default rounds")
        if choice.get("booster_params"):
            parts.append(", ".join(f"{key.replace('_', ' ')} {value:g}" for key, value in choice["booster_params"].items()))
    if family != "trees" and choice.get("linear_params"):
        parts.append("linear " + ", ".join(f"{key}={value:g}" for key, value in choice["linear_params"].items()))
    if choice.get("target_transform"):
        parts.append(f"target fitted as {choice['target_transform']}")
    where = validated_on(choice.get("folds", 1), choice.get("validation_rows", 0))
    line = f"auto recipe's choice on {where}: " + ", ".join(parts)
    families = choice["families"]
    if families:
        # the registry's JSON may come back with its keys sorted: trees, linear, blend (the tie order)
        known = ("trees", "linear", "blend", "forest")
        ordered = sorted(families, key=lambda name: known.index(name) if name in known else len(known))
        scores = ", ".join(f"{name} {metric(families[name])}" for name in ordered)
        line += f" (validation {primary_metric or 'score'}: {scores})"
    return line


def describe_tuning(tuning: TuningSummary) -> str:
    """One line on what ``tune`` searched and kept (a version's ``tuning``)."""
    where = validated_on(tuning.get("folds", 1), tuning["validation_rows"])
    line = f"tune: {tuning['trials']} trials in {tuning['seconds']} s on {where}"
    boosters = len(tuning["ensemble"])
    family = tuning.get("family", "trees")
    if family == "forest":
        trees = tuning.get("forest_trees", FOREST_TREES)
        kept = f"the forest ({trees} extremely randomised trees), which validated better than the search"
    else:
        kept = f"the average of its {boosters} best boosters" if boosters > 1 else "its best booster"
        if family in ("linear", "blend") and tuning.get("linear_params"):
            settings = ", ".join(f"{key}={value:g}" for key, value in tuning["linear_params"].items())
            kept = (f"the linear model ({settings})" if family == "linear"
                    else f"{kept} blended with the linear model ({settings}, weight {tuning.get('linear_weight', 0):g})")
    line += f"; kept {kept}; validation {tuning['metric']}: best trial {metric(tuning['validation_score'])}"
    if "forest_score" in tuning and "searched_score" in tuning:
        line += f", searched model {metric(tuning['searched_score'])}, forest {metric(tuning['forest_score'])}"
    return line


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
