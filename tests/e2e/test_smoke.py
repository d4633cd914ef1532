"""`stepml smoke` against the offline stack: it passes, fails readably, and leaves nothing behind."""

from __future__ import annotations

import json
import socket
from typing import Any

from click.testing import CliRunner

from stepml import keys
from stepml.cli import main
from stepml.smoke import SmokeCheck, smoke_dataset_name
from stepml.stack import Stack

STEPS = [
    "find the stack",
    "upload the dataset",
    "run 1 trains version 1",
    "predict through the HTTP API",
    "upload it again",
    "run 2 trains version 2",
    "promote through the HTTP API",
    "roll back through the HTTP API",
    "clean up",
]


def leftovers(local_stack: Any, dataset: str) -> list[str]:
    """Every object version or delete marker still under the dataset's prefixes."""
    s3 = local_stack.client("s3")
    found = []
    for prefix in keys.dataset_prefixes(dataset):
        page = s3.list_object_versions(Bucket=local_stack.bucket, Prefix=prefix)
        found += [item["Key"] for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]]
    return found


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StackWithoutApi(Stack):
    """A stack whose HTTP API does not answer (as when the API was not deployed or is blocked)."""

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{closed_port()}"


def test_smoke_passes_and_leaves_nothing_behind(local_stack) -> None:
    # Given an offline stack, when a user runs `stepml smoke` on it
    result = CliRunner().invoke(
        main,
        ["--endpoint-url", local_stack.endpoint_url, "smoke"],
        env=local_stack.client_environment(),
        catch_exceptions=False,
    )

    # then every step passes, with its duration, and the command exits 0
    assert result.exit_code == 0, result.output
    for step in STEPS:
        assert any(line.startswith("PASS") and step in line for line in result.output.splitlines()), (step, result.output)
    assert "smoke check PASSED" in result.output
    assert "champion v2 → v1" in result.output and "champion v1 → v2" in result.output
    # the promotion went through the quality gate, whose verdict the step reports
    promote = next(line for line in result.output.splitlines() if "promote through the HTTP API" in line)
    assert "(gate passed: " in promote or "(forced past the gate: " in promote, promote
    # and nothing of the smoke dataset is left in the bucket, in any object version
    dataset = result.output.split("(dataset ", 1)[1].split(")", 1)[0]
    assert dataset.startswith("smoke-")
    assert leftovers(local_stack, dataset) == []


def test_a_failing_step_is_readable_and_still_cleaned_up(local_stack) -> None:
    # Given a stack whose HTTP API is unreachable
    stack = StackWithoutApi(endpoint_url=local_stack.endpoint_url)
    dataset = smoke_dataset_name()

    # when the smoke check runs
    report = SmokeCheck(stack, dataset=dataset).run()

    # then it fails at the prediction with a one-line reason, skips the rest, and still cleans up
    assert not report.passed
    assert [s.name for s in report.steps] == [*STEPS[:4], "clean up"]
    predict, cleanup = report.steps[3], report.steps[4]
    assert not predict.passed and predict.detail.startswith("cannot reach the HTTP API: ")
    assert "Traceback" not in predict.detail and "\n" not in predict.detail
    assert cleanup.passed and "deleted" in cleanup.detail
    assert leftovers(local_stack, dataset) == []


def test_a_run_that_outlives_its_timeout_is_stopped_and_cleaned_up(local_stack) -> None:
    # Given a smoke check that gives the run far less time than it needs
    dataset = smoke_dataset_name()
    check = SmokeCheck(Stack(endpoint_url=local_stack.endpoint_url, credentials=local_stack.admin_credentials.client_kwargs()), dataset=dataset, run_timeout=0.5,
                       settle_seconds=8)

    # when it runs
    report = check.run()

    # then the run step fails with the timeout, the run is stopped, and what its last stage wrote
    # after the stop is swept up too
    assert [s.name for s in report.steps] == [*STEPS[:3], "clean up"]
    assert not report.steps[2].passed and "no finished run" in report.steps[2].detail
    assert report.steps[3].passed and "stopped 1 running execution" in report.steps[3].detail, report.steps[3]
    assert leftovers(local_stack, dataset) == []
    statuses = {e["status"] for e in local_stack.client("stepfunctions").list_executions(
        stateMachineArn=local_stack.state_machine_arn)["executions"] if e["name"].startswith(dataset)}
    # ABORTED; moto's interpreter may still mark it FAILED when the stage in flight then fails on
    # its deleted input. Either way it trained nothing.
    assert statuses and statuses <= {"ABORTED", "FAILED"}


def test_a_failed_run_names_its_state_and_cause(local_stack, monkeypatch) -> None:
    # Given a deploy that rejects the upload (here: the smoke CSV arrives with only its header)
    monkeypatch.setattr("stepml.smoke.smoke_csv", lambda: b"amount,colour,noise,label\n")
    dataset = smoke_dataset_name()

    report = SmokeCheck(Stack(endpoint_url=local_stack.endpoint_url, credentials=local_stack.admin_credentials.client_kwargs()), dataset=dataset).run()

    # then the run step says which state failed and why, in one line, and the cleanup still ran
    run = report.steps[2]
    assert not run.passed and "ended FAILED at 'Validate dataset': DataError: " in run.detail, run.detail
    assert "Traceback" not in run.detail and "\n" not in run.detail and "stepml runs show" in run.detail
    assert report.steps[-1].name == "clean up" and report.steps[-1].passed
    assert leftovers(local_stack, dataset) == []


def test_a_missing_stack_fails_readably_without_traceback(local_stack) -> None:
    result = CliRunner().invoke(
        main,
        ["--endpoint-url", local_stack.endpoint_url, "--stack-name", "no-such-stack", "smoke", "--json"],
        env=local_stack.client_environment(),
    )
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert not report["passed"]
    assert [s["name"] for s in report["steps"]] == ["find the stack", "clean up"]
    assert "cannot find the stack 'no-such-stack'" in report["steps"][0]["detail"]
    assert report["steps"][1]["detail"] == "nothing to clean up: nothing was uploaded"
    assert "Traceback" not in result.output

