"""The pipeline's X-Ray trace: a subsegment per stage step, annotated with the run it belongs to; and
no tracing at all where no X-Ray daemon listens."""

from __future__ import annotations

from typing import Any

import pytest

from stepml import observability


class CapturingEmitter:
    """Stands in for the UDP emitter to the X-Ray daemon: keeps what would be sent."""

    ip, port = "127.0.0.1", 2000

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_entity(self, entity: Any) -> None:
        self.sent.append(entity.to_dict())

    def set_daemon_address(self, address: str) -> None:
        pass


class Context:
    function_name, memory_limit_in_mb, aws_request_id = "train", 2048, "request-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:train"


@pytest.fixture
def lambda_tracing(monkeypatch: pytest.MonkeyPatch):
    """A Lambda-like environment with Active tracing (a trace id), the daemon replaced by a list."""
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "train")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)
    import aws_xray_sdk

    # A Tracer made earlier in this process outside Lambda (a handler imported by another test)
    # switched the X-Ray SDK off for the whole process; a Lambda process starts with it on.
    # Powertools keeps a Tracer's first configuration for the process (class-level), too.
    from aws_lambda_powertools.tracing import Tracer

    aws_xray_sdk.global_sdk_config.set_sdk_enabled(True)
    Tracer._reset_config()
    logger, tracer, _ = observability.stage_instruments("train")
    emitter = CapturingEmitter()
    from aws_xray_sdk.core.lambda_launcher import LambdaContext

    # The recorder picks Lambda's context (the facade segment from _X_AMZN_TRACE_ID) when first
    # imported inside Lambda; in a test process it may have been imported outside.
    tracer.provider.configure(emitter=emitter, context=LambdaContext())
    yield logger, tracer, emitter
    observability.trace_with(None)
    aws_xray_sdk.global_sdk_config.set_sdk_enabled(False)


def test_a_stage_step_is_a_subsegment_of_a_trace_annotated_with_its_run(lambda_tracing) -> None:
    logger, tracer, emitter = lambda_tracing

    @tracer.capture_lambda_handler
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        observability.correlate(logger, tracer, event)
        with observability.span("fit"):
            pass
        return {}

    handler({"dataset": "adult", "run_id": "adult-run-1", "execution_arn": "arn:aws:states:x"}, Context())

    names = [entity["name"] for entity in emitter.sent]
    assert names == ["## fit", "## handler"]
    handler_segment = emitter.sent[1]
    assert handler_segment["annotations"]["dataset"] == "adult"
    assert handler_segment["annotations"]["run_id"] == "adult-run-1"
    assert emitter.sent[0]["parent_id"] == handler_segment["id"]


def test_without_a_daemon_tracing_is_off_and_spans_cost_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # The offline stack's environment: Lambda-like, but POWERTOOLS_TRACE_DISABLED (local runner).
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    _, tracer, _ = observability.stage_instruments("train")
    assert tracer.disabled
    with observability.span("fit"):  # a no-op: nothing to open, nothing raised
        pass
    assert observability._subsegment is None


def test_request_metrics_write_one_emf_line_per_request_that_cloudwatch_accepts(capsys) -> None:
    import json

    from stepml.local import emf

    metrics = observability.RequestMetrics("inference")
    metrics.add("UnseenCategories", 1, model="adult", version=3)
    metrics.add("Predictions", 2, model="adult")
    metrics.flush("stepml-inference")
    first = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # The first request of an environment also says it was a cold start, as Powertools does.
    assert [doc.get("ColdStart") for doc in first] == [1, None]
    served = first[1]
    assert served["Predictions"] == 2 and served["UnseenCategories"] == 1 and served["version"] == 3
    assert served["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "stage", "model"]]
    data = {datum["MetricName"]: datum for _, datum in emf.parse(served)}
    assert data["Predictions"]["Values"] == [2.0]
    assert {d["Name"]: d["Value"] for d in data["Predictions"]["Dimensions"]} == {
        "service": "stepml", "stage": "inference", "model": "adult"}
    # A warm request counts afresh; one that counted nothing (an error, a GET) writes nothing.
    metrics.add("Predictions", 5, model="california")
    metrics.flush("stepml-inference")
    (again,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert again["Predictions"] == 5 and again["model"] == "california" and "UnseenCategories" not in again
    metrics.flush("stepml-inference")
    assert capsys.readouterr().out == ""
