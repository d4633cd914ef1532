"""A run's history becomes a table of states with durations, retries and readable errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from stepml.runs import readable_cause, summarize_history

T0 = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def entered(name: str, seconds: float, kind: str = "Task") -> dict:
    return {"type": f"{kind}StateEntered", "timestamp": at(seconds), "stateEnteredEventDetails": {"name": name}}


def exited(name: str, seconds: float, kind: str = "Task") -> dict:
    return {"type": f"{kind}StateExited", "timestamp": at(seconds), "stateExitedEventDetails": {"name": name}}


CAUSE = json.dumps({"errorMessage": "s3://b/raw/x/y.csv is empty", "errorType": "DataError", "stackTrace": ["..."]})


def test_retried_then_succeeded_and_then_failed() -> None:
    events = [
        {"type": "ExecutionStarted", "timestamp": at(0)},
        entered("Validate dataset", 0),
        {"type": "TaskFailed", "timestamp": at(1), "taskFailedEventDetails": {"error": "TransientError", "cause": "{}"}},
        {"type": "TaskSucceeded", "timestamp": at(3.4), "taskSucceededEventDetails": {}},
        exited("Validate dataset", 3.5),
        entered("Preprocess data", 3.5),
        {"type": "TaskFailed", "timestamp": at(4), "taskFailedEventDetails": {"error": "DataError", "cause": CAUSE}},
        exited("Preprocess data", 4),
        entered("Dataset rejected", 4, kind="Fail"),
        {"type": "ExecutionFailed", "timestamp": at(4.1),
         "executionFailedEventDetails": {"error": "DataError", "cause": "s3://b/raw/x/y.csv is empty"}},
    ]
    states = summarize_history(events)
    assert [(s["name"], s["status"], s["duration_s"], s["retries"]) for s in states] == [
        ("Validate dataset", "SUCCEEDED", 3.5, 1),
        ("Preprocess data", "FAILED", 0.5, 0),
        ("Dataset rejected", "FAILED", 0.1, 0),
    ]
    assert states[1]["cause"] == "s3://b/raw/x/y.csv is empty"
    assert states[2]["error"] == "DataError"


def test_readable_cause_keeps_plain_text() -> None:
    assert readable_cause(CAUSE) == "s3://b/raw/x/y.csv is empty"
    assert readable_cause("States.Timeout after 300 s") == "States.Timeout after 300 s"
