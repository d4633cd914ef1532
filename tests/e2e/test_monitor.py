"""The monitor through the offline stack: a trained version's profile, captured traffic, an alarm.

Given a model trained by the pipeline (its version has a reference profile) and an SQS queue
subscribed to the stack's NotificationTopic, When traffic drawn from the training distribution is
captured and `stepml monitor` runs the Monitor function, Then there is no alarm and no message;
When the same traffic arrives with one feature shifted, Then the report names that feature, the
queue receives one readable message, and the key figures are CloudWatch metrics of the model.
"""

from __future__ import annotations

import gzip
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from click.testing import CliRunner

from stepml.cli import main
from stepml.local import LocalStack
from tests.e2e.conftest import upload, wait_for_execution
from tests.e2e.test_notifications import messages_about, subscribed_queue  # noqa: F401  (a fixture)
from tests.e2e.test_pipeline import synthetic_csv


def traffic(rows: int, seed: int, shift: float = 0.0) -> list[dict[str, Any]]:
    """Capture records (issue #17's format) of rows drawn as synthetic_csv draws them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows) + shift
    colour = rng.choice(["red", "green", "blue"], size=rows)
    z = rng.normal(size=rows)
    score = x + (colour == "red") * 1.5
    now = datetime.now(UTC)
    records = []
    for start in range(0, rows, 5):
        chunk = range(start, min(start + 5, rows))
        records.append({
            "stepml_capture": 1, "time": (now - timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
            "request_id": uuid.uuid4().hex, "caller": "arn:aws:iam::123456789012:user/alice",
            "model": None, "version": 1, "alias": "champion", "task": "classification", "mode": "full",
            "inputs": [{"x": round(float(x[i]), 4), "colour": str(colour[i]), "z": round(float(z[i]), 4)} for i in chunk],
            "input_hashes": None,
            "outputs": ["yes" if score[i] > 0.5 else "no" for i in chunk],
            "probabilities": [{"yes": 0.99, "no": 0.01} if score[i] > 0.5 else {"yes": 0.01, "no": 0.99} for i in chunk],
            "warnings": [], "latency_ms": 0.5, "status": 200,
        })
    return records


def put_captures(stack: LocalStack, dataset: str, records: list[dict[str, Any]]) -> str:
    day = datetime.now(UTC).date().isoformat()
    key = f"capture/{dataset}/dt={day}/{uuid.uuid4().hex}.gz"
    body = "".join(json.dumps({**r, "model": dataset}) + "\n" for r in records).encode()
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=gzip.compress(body))
    return key


def stepml(stack: LocalStack, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--endpoint-url", stack.endpoint_url, *args],
                                env=stack.client_environment(), catch_exceptions=False)
    return result.exit_code, result.output


def test_drift_in_captured_traffic_raises_one_alarm_naming_the_feature(
    local_stack: LocalStack, subscribed_queue: str  # noqa: F811
) -> None:
    dataset = f"watched-{uuid.uuid4().hex[:6]}"
    s3 = local_stack.client("s3")
    s3.put_object(Bucket=local_stack.bucket, Key=f"config/{dataset}.yaml",
                  Body=b"target: label\nrecipe: seed-a\nmonitoring:\n  min_rows: 200\n")
    key = f"raw/{dataset}/data.csv"
    since = upload(local_stack, key, synthetic_csv(600, 5))
    assert wait_for_execution(local_stack, since=since, key=key)["status"] == "SUCCEEDED"
    meta = json.loads(s3.get_object(Bucket=local_stack.bucket, Key=f"models/{dataset}/version-1/meta.json")["Body"].read())
    assert "profile.json" in meta["artifacts"]

    # Given traffic from the training distribution: no alarm, no message
    calm = put_captures(local_stack, dataset, traffic(1000, 11))
    code, out = stepml(local_stack, "monitor", dataset)
    assert code == 0, out
    assert "No alarms." in out and "1000 rows" in out and "DRIFT" not in out
    assert messages_about(local_stack, subscribed_queue, dataset, wait=2) == []

    # When the same traffic arrives with x shifted
    s3.delete_object(Bucket=local_stack.bucket, Key=calm)
    put_captures(local_stack, dataset, traffic(1000, 11, shift=2.0))
    code, out = stepml(local_stack, "monitor", dataset, "--json")
    assert code == 0, out
    report = json.loads(out)

    assert [a["feature"] for a in report["alarms"] if a["kind"] == "drift" and a["feature"]] == ["x"]
    assert report["features"][0]["name"] == "x" and report["features"][0]["psi"] > 0.2
    latest = json.loads(s3.get_object(Bucket=local_stack.bucket, Key=f"monitoring/{dataset}/latest.json")["Body"].read())
    assert latest["alarms"] == report["alarms"]
    (message,) = messages_about(local_stack, subscribed_queue, dataset, wait=10)
    assert message["Subject"].startswith(f"stepml: {dataset} monitor raised")
    assert "feature 'x' drifted: PSI" in message["Message"] and f"stepml monitor {dataset}" in message["Message"]
    # the key figures are metrics of the model (EMF lines of the function)
    statistics = local_stack.client("cloudwatch").get_metric_statistics(
        Namespace="stepml", MetricName="MaxFeaturePSI",
        Dimensions=[{"Name": "stage", "Value": "monitor"}, {"Name": "model", "Value": dataset},
                    {"Name": "service", "Value": "stepml"}],
        StartTime=datetime.now(UTC) - timedelta(hours=1), EndTime=datetime.now(UTC) + timedelta(minutes=5),
        Period=3600, Statistics=["Maximum"],
    )["Datapoints"]
    assert statistics and statistics[0]["Maximum"] == report["features"][0]["psi"]

    # A model without a champion is one readable line, not a traceback
    code, out = stepml(local_stack, "monitor", "nosuchmodel")
    assert code == 1 and "no model named 'nosuchmodel'" in out and "Traceback" not in out


def test_the_schedule_is_deployed_with_a_role_that_may_invoke_only_the_monitor(local_stack: LocalStack) -> None:
    schedule = local_stack.client("scheduler").get_schedule(Name=f"{local_stack.stack_name}-monitor")
    assert schedule["ScheduleExpression"] == "rate(1 hour)"
    target = schedule["Target"]
    assert target["Arn"].endswith(f":function:{local_stack.function_name('MonitorFunction')}")
    assert target["Input"] == "{}" and target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    iam = local_stack.client("iam")
    role = target["RoleArn"].rsplit("/", 1)[-1]
    assert iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": ["scheduler.amazonaws.com"]}
    # moto's CloudFormation keeps a role's inline policies as Python reprs: compare the text
    policies = " ".join(str(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])
                        for name in iam.list_role_policies(RoleName=role)["PolicyNames"])
    actions = sorted(re.findall(r"'Action': '([^']+)'", policies))
    assert actions == ["lambda:InvokeFunction", "sqs:SendMessage"]
    assert local_stack.function_name("MonitorFunction") in policies


def test_served_predictions_and_fed_back_labels_reach_the_monitor_report(local_stack: LocalStack) -> None:
    """The whole loop as a user runs it: predictions through the signed HTTP API (captured by the
    log subscription → Firehose path), labels sent to /feedback, then `stepml monitor`."""
    from stepml.local import firehose
    from tests.e2e.test_pipeline import client_stack

    dataset = f"looped-{uuid.uuid4().hex[:6]}"
    s3 = local_stack.client("s3")
    s3.put_object(Bucket=local_stack.bucket, Key=f"config/{dataset}.yaml",
                  Body=b"target: label\nrecipe: seed-a\nmonitoring:\n  min_rows: 20\n")
    key = f"raw/{dataset}/data.csv"
    since = upload(local_stack, key, synthetic_csv(600, 7))
    assert wait_for_execution(local_stack, since=since, key=key)["status"] == "SUCCEEDED"

    # Given 12 prediction requests of 4 rows each, served by the API as the stack's administrator
    served = synthetic_csv(48, 8).decode().splitlines()
    header, rows = served[0].split(","), [line.split(",") for line in served[1:]]
    stack = client_stack(local_stack)
    request_ids, labels = [], []
    for start in range(0, 48, 4):
        chunk = [dict(zip(header, row, strict=True)) for row in rows[start:start + 4]]
        answer = stack.predict_request(dataset, {"instances": [
            {"x": float(r["x"]), "colour": r["colour"], "z": float(r["z"])} for r in chunk]})
        assert answer.status == 200, answer.body
        request_ids.append(answer.request_id)
        labels.append([r["label"] for r in chunk])
    # And the true labels of every row sent back through POST /models/{name}/feedback
    items = [{"request_id": rid, "row": i, "actual": label}
             for rid, chunk in zip(request_ids, labels, strict=True) for i, label in enumerate(chunk)]
    status, body = stack.feedback(dataset, {"items": items})
    assert status == 200, body
    assert firehose.drain(), "the local delivery stream did not finish"

    # When the monitor runs
    code, out = stepml(local_stack, "monitor", dataset, "--json")

    # Then it saw exactly those requests, from that caller, and the true accuracy next to the estimate
    assert code == 0, out
    report = json.loads(out)
    assert report["volume"]["requests"] == 12 and report["volume"]["rows"] == 48
    identity = local_stack.client("sts").get_caller_identity()["Arn"]
    assert report["volume"]["by_caller"] == {identity: 48}
    performance = report["performance"]
    assert performance["labelled_rows"] == 48
    assert performance["true"] is not None and performance["estimated"] is not None
    assert 0.5 < performance["true"] <= 1.0
