"""Embedded-metric-format lines become CloudWatch metrics offline, as CloudWatch Logs makes them on
AWS: what the handlers' Powertools Metrics print is what `get-metric-statistics` then shows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from stepml.local import emf
from tests.conftest import fresh_mock_aws


def powertools_line(capsys: pytest.CaptureFixture[str], stage: str, **values: float) -> str:
    """The EMF line a handler's Metrics flushes (the real Powertools code, not a hand-made copy)."""
    from aws_lambda_powertools.metrics import MetricUnit

    from stepml.observability import api_instruments

    _, metrics = api_instruments(stage)
    for name, value in values.items():
        metrics.add_metric(name=name, unit=MetricUnit.Seconds, value=value)
    metrics.flush_metrics()
    metrics.clear_default_dimensions()
    lines = [line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert len(lines) == 1
    return lines[0]


def test_a_powertools_line_is_read_with_its_namespace_dimensions_and_unit(capsys) -> None:
    line = powertools_line(capsys, "train", TrainingSeconds=12.5)
    data = emf.metric_data(["START RequestId: 1", '{"level": "INFO", "message": "model trained"}', line])
    assert len(data) == 1
    namespace, datum = data[0]
    assert namespace == "stepml"
    assert datum["MetricName"] == "TrainingSeconds" and datum["Values"] == [12.5] and datum["Unit"] == "Seconds"
    assert sorted((d["Name"], d["Value"]) for d in datum["Dimensions"]) == [("service", "stepml"), ("stage", "train")]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda doc: doc.update(TrainingSeconds="fast"), "a value that is not a number"),
        (lambda doc: doc.update(TrainingSeconds=float("nan")), "NaN"),
        (lambda doc: doc.pop("stage"), "a dimension without a value"),
        (lambda doc: doc["_aws"]["CloudWatchMetrics"][0].pop("Namespace"), "no namespace"),
        (lambda doc: doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].update(Unit="Hours"), "an unknown unit"),
        (lambda doc: doc["_aws"].update(Timestamp="now"), "a timestamp that is not milliseconds"),
    ],
)
def test_a_document_cloudwatch_would_refuse_gives_no_metric(capsys, change: Any, why: str) -> None:
    document = json.loads(powertools_line(capsys, "train", TrainingSeconds=1.0))
    change(document)
    assert emf.metric_data([json.dumps(document)]) == [], why


@fresh_mock_aws()
def test_published_metrics_answer_get_metric_statistics(capsys, monkeypatch) -> None:
    from moto.cloudwatch.models import cloudwatch_backends

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    lines = [powertools_line(capsys, "train", TrainingSeconds=value) for value in (2.0, 4.0)]
    assert emf.publish(lines, cloudwatch_backends["123456789012"]["us-east-1"]) == 2

    now = datetime.now(UTC)
    statistics = boto3.client("cloudwatch", region_name="us-east-1").get_metric_statistics(
        Namespace="stepml", MetricName="TrainingSeconds",
        Dimensions=[{"Name": "service", "Value": "stepml"}, {"Name": "stage", "Value": "train"}],
        StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=5), Period=600,
        Statistics=["SampleCount", "Average", "Maximum"],
    )["Datapoints"]
    assert len(statistics) == 1
    assert statistics[0]["SampleCount"] == 2 and statistics[0]["Average"] == 3.0 and statistics[0]["Maximum"] == 4.0
