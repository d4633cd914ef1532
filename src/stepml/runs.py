"""Turn a Step Functions execution history into what a user wants to see: states, durations, errors."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any


def _seconds(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds(), 3)


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
            entry = open_states.pop(name, None)
            if entry is not None:
                # A state whose last attempt failed was left through a Catch: it did not succeed.
                entry["status"] = "FAILED" if entry["last_attempt_failed"] else "SUCCEEDED"
                entry["duration_s"] = _seconds(entry["started"], event["timestamp"])
        elif kind in {"LambdaFunctionFailed", "TaskFailed", "LambdaFunctionTimedOut", "TaskTimedOut"}:
            details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            current = states[-1] if states else None
            if current is not None:
                current["retries"] += 1
                current["last_attempt_failed"] = True
                current["error"] = details.get("error")
                current["cause"] = readable_cause(details.get("cause"))
        elif kind in {"TaskSucceeded", "LambdaFunctionSucceeded"} and states:
            states[-1]["last_attempt_failed"] = False
        elif kind == "ExecutionFailed":
            details = event.get("executionFailedEventDetails", {})
            for entry in open_states.values():
                entry["status"] = "FAILED"
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
