"""Turn a Step Functions execution history into what a user wants to see: states, durations, errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def _seconds(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds(), 3)


_EXECUTION_ENDS = {"ExecutionFailed": "FAILED", "ExecutionAborted": "ABORTED", "ExecutionTimedOut": "TIMED_OUT"}


def summarize_history(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per state entered, in order: name, type, status, duration, error/cause."""
    states: list[dict[str, Any]] = []
    open_states: dict[str, dict[str, Any]] = {}
    for event in events:
        kind: str = event["type"]
        if kind.endswith("StateEntered"):
            name = event["stateEnteredEventDetails"]["name"]
            entry = {
                "name": name,
                "type": kind[: -len("StateEntered")] or "State",
                "status": "RUNNING",
                "started": event["timestamp"],
                "duration_s": None,
                "retries": 0,
                "last_attempt_failed": False,
                "error": None,
                "cause": None,
            }
            states.append(entry)
            open_states[name] = entry
        elif kind.endswith("StateExited"):
            name = event["stateExitedEventDetails"]["name"]
            closed = open_states.pop(name) if name in open_states else None
            if closed is not None:
                entry = closed
                # A state whose last attempt failed was left through a Catch: it did not succeed.
                entry["status"] = "FAILED" if entry["last_attempt_failed"] else "SUCCEEDED"
                entry["duration_s"] = _seconds(entry["started"], event["timestamp"])
        elif kind in {"LambdaFunctionFailed", "TaskFailed", "LambdaFunctionTimedOut", "TaskTimedOut"}:
            details: dict[str, Any] = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            current = states[-1] if states else None
            if current is not None:
                current["retries"] += 1
                current["last_attempt_failed"] = True
                current["error"] = details.get("error")
                current["cause"] = readable_cause(details.get("cause"))
        elif kind in {"TaskSucceeded", "LambdaFunctionSucceeded"} and states:
            states[-1]["last_attempt_failed"] = False
        elif kind in _EXECUTION_ENDS:
            # States still open when the execution ends (a stop, a timeout, a failure) end with it.
            details = event.get(f"{kind[0].lower()}{kind[1:]}EventDetails", {})
            for entry in open_states.values():
                entry["status"] = _EXECUTION_ENDS[kind]
                entry["duration_s"] = _seconds(entry["started"], event["timestamp"])
                entry["error"] = entry["error"] or details.get("error")
                entry["cause"] = entry["cause"] or readable_cause(details.get("cause"))
            open_states.clear()
    for entry in states:
        # Failed attempts followed by another attempt are retries; a final failure is not.
        if entry.pop("last_attempt_failed"):
            entry["retries"] -= 1
        if entry["type"] == "Fail":
            entry["status"] = "FAILED"
        entry["started"] = entry["started"].isoformat() if isinstance(entry["started"], datetime) else entry["started"]
    return states


def readable_cause(cause: str | None) -> str | None:
    """A Lambda error cause is JSON with a stack trace; users need only its message."""
    if not cause:
        return cause
    try:
        parsed = json.loads(cause)
    except ValueError:
        return cause
    if isinstance(parsed, dict) and "errorMessage" in parsed:
        return str(parsed["errorMessage"])
    return cause


#: The state machine's terminal states (statemachine/pipeline.asl.json) and what each one means.
OUTCOMES = {
    "Promote to champion": "champion",
    "Keep as candidate": "candidate",
    "Skip duplicate delivery": "duplicate",
    "Dataset rejected": "rejected",
    "Model export failed": "export_failed",
    "Staged model changed": "staged_changed",
    "Staged table changed": "staged_changed",
    "Upload too large": "too_large",
    "Spark job failed": "spark_failed",
    "Function limit reached": "limit_reached",
    "Pipeline failed": "failed",
}
_FAILURE_WORDS = {
    "rejected": "Dataset rejected",
    "export_failed": "Model export failed: nothing was registered",
    "staged_changed": "A file a stage handed on changed in the bucket: it was not loaded, nothing was registered",
    "too_large": "Upload too large",
    "spark_failed": "Spark job failed",
    "limit_reached": "Function limit reached",
    "failed": "Pipeline failed",
}


def run_outcome(run: dict[str, Any]) -> dict[str, Any]:
    """How a run ended, in one readable sentence, for every terminal state of the state machine.

    ``run`` is :meth:`stepml.stack.Stack.run`'s dict (status, states, output, error, cause). Returns
    ``outcome`` (champion, candidate, duplicate, rejected, export_failed, staged_changed, too_large, spark_failed,
    limit_reached, failed,
    running, timed_out or aborted), ``state`` (the terminal state's name, when one was reached),
    ``version`` and ``reason`` (the gate's, for a registered version) and ``summary``.
    """
    status = run.get("status")
    states = run.get("states") or []
    last = states[-1]["name"] if states else None
    returned = run.get("output")
    output: dict[str, Any] = returned if isinstance(returned, dict) else {}
    outcome = OUTCOMES.get(last or "")
    found: dict[str, Any] = {"outcome": outcome, "state": last if outcome else None, "version": None, "reason": None}
    if status == "RUNNING":
        found.update(outcome="running", summary=f"still running ({last or 'not started'})")
        return found
    if status in ("TIMED_OUT", "ABORTED"):
        word = "timed out" if status == "TIMED_OUT" else "was stopped"
        found.update(outcome=status.lower(), summary=f"the run {word} in {last or 'its first state'}; nothing new is served")
        return found
    if status != "SUCCEEDED":
        outcome = outcome if outcome in _FAILURE_WORDS else "failed"
        cause = readable_cause(run.get("cause")) or "no cause recorded"
        error = run.get("error") or "Error"
        found.update(outcome=outcome, summary=f"{_FAILURE_WORDS[outcome]}: {error}: {cause}")
        return found
    dataset = output.get("dataset", "?")
    if output.get("duplicate") or outcome == "duplicate":
        original = output.get("original_run") or "an earlier run"
        found.update(outcome="duplicate", summary=(
            f"skipped duplicate delivery: this exact upload of {dataset} was already handled by run "
            f"{original}; nothing was trained or registered"))
        return found
    recorded = output.get("gate")
    gate: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    version = output.get("version")
    reason = output.get("decision") or gate.get("reason") or "no reason recorded"
    found.update(version=version, reason=reason)
    if output.get("promoted"):
        found.update(outcome="champion", summary=f"model {dataset} version {version} is the champion: {reason}")
    else:
        found.update(outcome="candidate", summary=(
            f"model {dataset} version {version} is registered as a candidate, not promoted: {reason}"))
    return found


def describe_run(sfn: Any, arn: str) -> dict[str, Any]:
    """One run (a Step Functions execution): status, timing, input key, output, error, its states
    and :func:`run_outcome`. ``sfn`` is a boto3 Step Functions client."""
    described = sfn.describe_execution(executionArn=arn)
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    detail = json.loads(described.get("input") or "{}").get("detail", {})
    stop = described.get("stopDate")
    start = described["startDate"]
    run = {
        "name": described["name"],
        "arn": arn,
        "status": described["status"],
        "started": start.isoformat(),
        "duration_s": round(((stop or datetime.now(UTC)) - start).total_seconds(), 3),
        "key": detail.get("object", {}).get("key"),
        "output": json.loads(described["output"]) if described.get("output") else None,
        "error": described.get("error"),
        "cause": described.get("cause"),
        "states": summarize_history(events),
    }
    run["outcome"] = run_outcome(run)
    return run


#: Why a column was left out of training, in words (the validation report's ``dropped_columns``).
LEFT_OUT_REASONS = {
    "drop_columns": "drop_columns in the config",
    "id_columns": "id_columns in the config",
    "id": "unique per row: an identifier",
}


def validation_findings(report: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What a user should read of a run's validation report (``runs/<dataset>/<run>/validation.json``).

    Returns None without a report (a run rejected before its report was written, a duplicate
    delivery), else ``warnings`` (all of them, how the file was read first: its encoding,
    duplicate header names) and ``dropped_columns`` (each column left out of training and why, as
    the report names it: :data:`LEFT_OUT_REASONS`). ``stepml upload`` and ``stepml runs show``
    print them; ``stepml runs show --json`` includes them as the run's ``validation``.
    """
    if report is None:
        return None
    return {
        "warnings": [str(warning) for warning in report.get("warnings") or []],
        "dropped_columns": {str(name): str(why) for name, why in (report.get("dropped_columns") or {}).items()},
    }
