"""A run's history becomes a table of states with durations, retries and readable errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from stepml.runs import readable_cause, run_outcome, summarize_history

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


def ended(status: str, last: str, output: dict | None = None, error: str | None = None,
          cause: str | None = None) -> dict:
    return {"status": status, "states": [{"name": "Validate dataset"}, {"name": last}], "output": output,
            "error": error, "cause": cause}


def test_every_terminal_state_has_a_readable_outcome() -> None:
    gate = {"passed": False, "reason": "balanced_accuracy 0.61 is below the required 0.9 (min_primary_metric)"}
    cases = {
        "champion": ended("SUCCEEDED", "Promote to champion",
                          {"dataset": "d", "version": 1, "promoted": True, "decision": "first version: …"}),
        "candidate": ended("SUCCEEDED", "Keep as candidate", {"dataset": "d", "version": 2, "gate": gate}),
        "duplicate": ended("SUCCEEDED", "Skip duplicate delivery",
                           {"dataset": "d", "duplicate": True, "original_run": "d-1"}),
        "rejected": ended("FAILED", "Dataset rejected", error="DataError", cause="s3://b/raw/d/x.csv is empty"),
        "export_failed": ended("FAILED", "Model export failed", error="ModelExportError", cause="row 12 differs"),
        "staged_changed": ended("FAILED", "Staged table changed", error="ArtifactIntegrityError",
                                cause="preprocessed/d/r/train.parquet changed after Preprocess wrote it"),
        "too_large": ended("FAILED", "Upload too large", error="UploadTooLarge",
                           cause="s3://b/raw/d/x.csv is 20 bytes, over the MaxUploadBytes of this stack (10 bytes)"),
        "spark_failed": ended("FAILED", "Spark job failed", error="States.TaskFailed",
                              cause="Train on Spark failed (Glue job j, run r, FAILED): no rows. Nothing was registered."),
        "limit_reached": ended("FAILED", "Function limit reached", error="Runtime.OutOfMemory", cause="Train model ran out of memory"),
        "failed": ended("FAILED", "Pipeline failed", error="KeyError", cause=CAUSE),
    }
    outcomes = {name: run_outcome(run) for name, run in cases.items()}

    assert {name: o["outcome"] for name, o in outcomes.items()} == {name: name for name in cases}
    assert outcomes["champion"]["summary"] == "model d version 1 is the champion: first version: …"
    assert outcomes["candidate"]["summary"] == (
        "model d version 2 is registered as a candidate, not promoted: " + gate["reason"])
    assert outcomes["candidate"]["version"] == 2 and outcomes["candidate"]["state"] == "Keep as candidate"
    assert "already handled by run d-1" in outcomes["duplicate"]["summary"]
    assert outcomes["rejected"]["summary"] == "Dataset rejected: DataError: s3://b/raw/d/x.csv is empty"
    assert outcomes["export_failed"]["summary"].startswith("Model export failed: nothing was registered")
    assert "ran out of memory" in outcomes["limit_reached"]["summary"]
    assert outcomes["too_large"]["summary"].startswith("Upload too large: UploadTooLarge: s3://b/raw/d/x.csv is 20 bytes")
    assert outcomes["spark_failed"]["summary"].startswith("Spark job failed: States.TaskFailed: Train on Spark failed")
    assert outcomes["staged_changed"]["summary"].startswith("A file a stage handed on changed in the bucket")
    assert "train.parquet changed after Preprocess" in outcomes["staged_changed"]["summary"]
    # A Lambda cause's JSON (with its stack trace) is reduced to the message.
    assert outcomes["failed"]["summary"] == "Pipeline failed: KeyError: s3://b/raw/x/y.csv is empty"


def test_a_promotion_that_lost_the_race_is_a_candidate() -> None:
    run = ended("SUCCEEDED", "Promote to champion",
                {"dataset": "d", "version": 3, "promoted": False, "decision": "accuracy 0.8 is worse than …"})
    assert run_outcome(run)["outcome"] == "candidate"


@pytest.mark.parametrize(("status", "outcome"), [("RUNNING", "running"), ("TIMED_OUT", "timed_out"),
                                                 ("ABORTED", "aborted")])
def test_unfinished_runs(status: str, outcome: str) -> None:
    assert run_outcome(ended(status, "Train model"))["outcome"] == outcome


def test_every_terminal_state_of_the_state_machine_is_an_outcome() -> None:
    import json

    from stepml.runs import OUTCOMES
    from tests.conftest import ROOT

    definition = json.loads((ROOT / "statemachine" / "pipeline.asl.json").read_text())
    terminal = {name for name, state in definition["States"].items()
                if state["Type"] in ("Fail", "Succeed") or state.get("End") is True}
    assert terminal <= set(OUTCOMES), sorted(terminal - set(OUTCOMES))
