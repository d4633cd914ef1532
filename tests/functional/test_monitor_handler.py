"""The Monitor handler with moto, as its schedule invokes it: every champion, one message per model
with alarms, the key figures as EMF metrics of the model, a model it cannot monitor named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import numpy as np
import pytest

from stepml import keys
from stepml.errors import NotFoundError
from stepml.profile import build_profile
from stepml.registry import CHAMPION, ModelRegistry
from stepml.settings import Settings
from stepml.storage import S3Store
from tests.functional.conftest import EVENT_BUCKET

SCHEMA = [{"name": "size", "kind": "numeric", "required": True, "missing_in_training": False},
          {"name": "colour", "kind": "categorical", "required": True, "missing_in_training": False,
           "categories": ["blue", "green", "red"]}]


def register(store: S3Store, name: str, with_profile: bool) -> None:
    rng = np.random.default_rng(1)
    columns = {"size": rng.normal(10, 2, 2000).tolist(), "colour": rng.choice(["red", "green", "blue"], 2000).tolist()}
    profile = build_profile(columns, SCHEMA, "regression", rng.normal(100, 5, 500).tolist(), {"rmse": 5.0})
    artifacts = {keys.VERSION_PROFILE: json.dumps(profile).encode()} if with_profile else {}
    meta: Any = {"dataset": name, "task": "regression", "schema": SCHEMA}
    registry = ModelRegistry(store)
    registry.set_alias(name, CHAMPION, registry.register_version(name, "run-1", artifacts, meta)["version"], "test")


def capture_traffic(s3: Any, name: str, shift: float) -> None:
    rng = np.random.default_rng(2)
    now = datetime.now(UTC)
    lines = []
    for request in range(100):
        sizes = rng.normal(10 + shift, 2, 5)
        lines.append(json.dumps({
            "stepml_capture": 1, "time": (now - timedelta(minutes=10)).isoformat(), "request_id": f"r{request}",
            "caller": None, "model": name, "version": 1, "alias": "champion", "task": "regression", "mode": "full",
            "inputs": [{"size": float(s), "colour": str(rng.choice(["red", "green", "blue"]))} for s in sizes],
            "outputs": rng.normal(100, 5, 5).tolist(), "probabilities": None, "warnings": [],
            "latency_ms": 0.3, "status": 200}))
    s3.put_object(Bucket=EVENT_BUCKET, Key=f"{keys.capture_day_prefix(name, now.date().isoformat())}part.jsonl",
                  Body="\n".join(lines).encode())


@pytest.fixture
def topic_queue(s3: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    sns, sqs = boto3.client("sns", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
    topic = sns.create_topic(Name="stepml-notifications")["TopicArn"]
    url = sqs.create_queue(QueueName="alarms")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    monkeypatch.setenv("STEPML_NOTIFY_TOPIC", topic)
    return str(url)


def test_the_scheduled_run_monitors_every_champion_and_publishes_one_message_per_model_with_alarms(
    s3: Any, topic_queue: str, invoke: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    store = S3Store(Settings(bucket=EVENT_BUCKET))
    register(store, "calm", with_profile=True)
    register(store, "drifting", with_profile=True)
    register(store, "legacy", with_profile=False)
    capture_traffic(s3, "calm", shift=0.0)
    capture_traffic(s3, "drifting", shift=4.0)

    result = invoke("monitor", {})

    assert [r["model"] for r in result["reports"]] == ["calm", "drifting"]
    assert result["reports"][0]["alarms"] == []
    assert result["reports"][1]["alarms"] == [a for a in result["reports"][1]["alarms"] if "'size' drifted" in a]
    assert len(result["reports"][1]["alarms"]) == 1
    assert result["failed"] == [{"model": "legacy", "error": "NotFoundError",
                                 "message": "model 'legacy' version 1 has no reference profile (profile.json): it "
                                            "was registered before stepml kept one; retrain it to monitor it"}]
    messages = boto3.client("sqs", region_name="us-east-1").receive_message(QueueUrl=topic_queue, MaxNumberOfMessages=10)
    (message,) = messages["Messages"]
    assert json.loads(message["Body"])["Subject"] == "stepml: drifting monitor raised 1 alarm"
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"MaxFeaturePSI"' in line]
    assert {doc["model"] for doc in emf} == {"calm", "drifting"}
    assert all(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "stepml" and doc["stage"] == "monitor" for doc in emf)
    drifting = next(doc for doc in emf if doc["model"] == "drifting")
    assert drifting["MaxFeaturePSI"][0] > 0.2 and drifting["CapturedRequests"] == [100.0]
    assert "TrueRMSE" not in drifting  # no labels fed back
    report = store.get_json(keys.monitoring_latest("drifting"))
    assert report["performance"]["metric"] == "rmse" and report["performance"]["estimated"] is None


def test_a_named_model_that_cannot_be_monitored_fails_with_its_reason(s3: Any, topic_queue: str, invoke: Any) -> None:
    with pytest.raises(NotFoundError, match="no model named 'ghost'"):
        invoke("monitor", {"model": "ghost"})
