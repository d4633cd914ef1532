"""The whole pipeline offline, from an S3 put: Given the project's template running on the local
stack, When a user uploads a CSV, Then a run trains, evaluates, gates and registers a model that the
HTTP API serves — or fails with a cause that names the problem, leaving nothing half-registered."""

from __future__ import annotations

import itertools
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stepml.stack import Stack
from tests.conftest import head_bytes
from tests.e2e.conftest import api_client, s3_put_fault, upload, wait_for_execution


def synthetic_csv(rows: int, seed: int, noise: float = 0.0) -> bytes:
    """A small learnable classification table with a numeric and a categorical signal."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], size=rows)
    score = x + (colour == "red") * 1.5
    label = np.where(score > 0.5, "yes", "no")
    flip = rng.random(rows) < noise
    label = np.where(flip, np.where(label == "yes", "no", "yes"), label)
    frame = pd.DataFrame({"x": x.round(4), "colour": colour, "z": rng.normal(size=rows).round(4), "label": label})
    return frame.to_csv(index=False).encode()


def client_stack(local_stack) -> Stack:
    return Stack(endpoint_url=local_stack.endpoint_url, credentials=local_stack.admin_credentials.client_kwargs())


def post(local_stack, path: str, body: Any) -> tuple[int, Any]:
    """POST to the stack's HTTP API, signed as its administrator (who holds the operator policy)."""
    answer = api_client(local_stack).request("POST", path, raw=body if isinstance(body, bytes) else json.dumps(body).encode())
    return answer.status, answer.body


def model_keys(local_stack, dataset: str) -> list[str]:
    found = local_stack.client("s3").list_objects_v2(Bucket=local_stack.bucket, Prefix=f"models/{dataset}/")
    return [item["Key"] for item in found.get("Contents", [])]


def test_adult_upload_becomes_a_served_model(local_stack, adult_csv) -> None:
    stack = client_stack(local_stack)
    local_stack.client("s3").put_object(Bucket=local_stack.bucket, Key="config/adult-e2e.yaml", Body=b"target: income\n")
    since = upload(local_stack, "raw/adult-e2e/adult.csv", head_bytes(adult_csv, 4000))

    execution = wait_for_execution(local_stack, since=since, key="raw/adult-e2e/adult.csv")

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    output = json.loads(execution["output"])
    assert output["version"] == 1 and output["promoted"] is True
    run = stack.run(execution["executionArn"])
    assert [s["name"] for s in run["states"]] == [
        "Claim upload", "Already processed?", "Which engine?", "Validate dataset", "Preprocess data", "Train model", "Verify ONNX export",
        "Evaluate and register", "Quality gate", "Promote to champion"]
    assert all(s["status"] == "SUCCEEDED" for s in run["states"])
    versions = stack.models("adult-e2e")
    assert versions[0]["aliases"] == ["champion"]
    assert versions[0]["lineage"]["key"] == "raw/adult-e2e/adult.csv"
    assert versions[0]["lineage"]["execution_arn"] == execution["executionArn"]

    record = {f["name"]: (f["min"] if f["kind"] == "numeric" else f["categories"][0]) for f in versions[0]["schema"]}
    status, body = post(local_stack, "/models/adult-e2e/predict", record)
    assert status == 200, body
    assert body["version"] == 1 and body["predictions"][0] in {"<=50K", ">50K"}

    # a row as it stands in the CSV: a missing category as null, the target column included
    status, body = post(local_stack, "/models/adult-e2e/predict",
                        {**record, "workclass": None, "income": "<=50K"})
    assert status == 200, body
    assert body["warnings"][0][-1] == "ignored column(s) the model does not use: income"

    status, body = post(local_stack, "/models/adult-e2e/predict", {**record, "age": "forty"})
    assert status == 422 and "age" in body["message"]
    status, body = post(local_stack, "/models/adult-e2e/predict", b"{not json")
    assert status == 400
    status, body = post(local_stack, "/models/no-such-model/predict", record)
    assert status == 404 and "no-such-model" in body["message"]

    # The functions' embedded-metric-format lines became CloudWatch metrics, as on AWS.
    assert metric_statistics(local_stack, "TrainingSeconds", stage="train")["Maximum"] > 0
    assert metric_statistics(local_stack, "GatePassed", stage="evaluate")["Sum"] >= 1
    served = metric_statistics(local_stack, "Predictions", stage="inference", model="adult-e2e")
    assert served["Sum"] == 2  # the two 200 responses, one row each


def metric_statistics(local_stack, name: str, **dimensions: str) -> dict[str, Any]:
    """The stack's CloudWatch statistics of stepml metric ``name`` over the last hour."""
    now = datetime.now(UTC)
    points = local_stack.client("cloudwatch").get_metric_statistics(
        Namespace="stepml", MetricName=name,
        Dimensions=[{"Name": key, "Value": value} for key, value in {"service": "stepml", **dimensions}.items()],
        StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=1), Period=3660,
        Statistics=["SampleCount", "Sum", "Maximum"],
    )["Datapoints"]
    assert len(points) == 1, f"{name} {dimensions}: {points}"
    return points[0]


@pytest.mark.parametrize(
    ("dataset", "body", "config", "error", "cause"),
    [
        ("headeronly", b"x,colour,label\n", None, "DataError", "header but no data rows"),
        ("empty", b"", None, "DataError", "is empty"),
        ("notarget", None, b"target: price\n", "DataError", "no target column 'price'"),
        ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", None, "DataError", "not a CSV"),
        ("badconfig", None, b"target: label\nrecipe: [\n", "ConfigError", "not valid YAML"),
    ],
)
def test_bad_uploads_fail_with_a_readable_cause(local_stack, dataset, body, config, error, cause) -> None:
    if config is not None:
        local_stack.client("s3").put_object(Bucket=local_stack.bucket, Key=f"config/{dataset}.yaml", Body=config)
    key = f"raw/{dataset}/data.csv"
    since = upload(local_stack, key, synthetic_csv(200, 1) if body is None else body)

    execution = wait_for_execution(local_stack, since=since, key=key)

    assert execution["status"] == "FAILED"
    assert execution["error"] == error
    assert cause in execution["cause"] and "Traceback" not in execution["cause"]
    assert model_keys(local_stack, dataset) == []
    run = client_stack(local_stack).run(execution["executionArn"])
    assert run["states"][-1]["name"] == "Dataset rejected" and run["states"][-1]["status"] == "FAILED"


def test_a_transient_error_is_retried_then_succeeds(local_stack) -> None:
    # S3 answers SlowDown to Preprocess's first write (a split; Validate's parsed table lives beside
    # them): the handler raises TransientError and the state machine retries the task.
    def is_split(key: str) -> bool:
        return key.startswith("preprocessed/retry/") and not key.endswith("/upload.parquet")

    with s3_put_fault(is_split, "SlowDown", 503, times=1) as refused:
        since = upload(local_stack, "raw/retry/data.csv", synthetic_csv(300, 2))
        execution = wait_for_execution(local_stack, since=since, key="raw/retry/data.csv")

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert refused, "the injected failure never happened"
    preprocess = next(s for s in client_stack(local_stack).run(execution["executionArn"])["states"]
                      if s["name"] == "Preprocess data")
    assert preprocess["retries"] >= 1 and preprocess["status"] == "SUCCEEDED"


def test_a_crash_between_artifact_and_metadata_leaves_no_version(local_stack) -> None:
    since = upload(local_stack, "raw/crash/data.csv", synthetic_csv(300, 3))
    assert wait_for_execution(local_stack, since=since, key="raw/crash/data.csv")["status"] == "SUCCEEDED"

    # The write that makes a version visible (meta.json, written last) is refused.
    def is_meta(key: str) -> bool:
        return key.startswith("models/crash/") and key.endswith("/meta.json")

    with s3_put_fault(is_meta, "AccessDenied", 403, times=100):
        since = upload(local_stack, "raw/crash/data-2.csv", synthetic_csv(300, 4))
        execution = wait_for_execution(local_stack, since=since, key="raw/crash/data-2.csv")

    assert execution["status"] == "FAILED", execution
    assert "AccessDenied" in execution["cause"] and "meta.json" in execution["cause"]
    stack = client_stack(local_stack)
    assert [v["version"] for v in stack.models("crash")] == [1]
    status, body = post(local_stack, "/models/crash/predict", {"x": 0.1, "colour": "red", "z": 0.0})
    assert status == 200 and body["version"] == 1


def test_a_worse_model_is_registered_but_not_promoted(local_stack) -> None:
    stack = client_stack(local_stack)
    since = upload(local_stack, "raw/gate/good.csv", synthetic_csv(600, 5))
    assert wait_for_execution(local_stack, since=since, key="raw/gate/good.csv")["status"] == "SUCCEEDED"
    since = upload(local_stack, "raw/gate/noisy.csv", synthetic_csv(600, 6, noise=0.3))

    execution = wait_for_execution(local_stack, since=since, key="raw/gate/noisy.csv")

    assert execution["status"] == "SUCCEEDED"
    output = json.loads(execution["output"])
    assert output["version"] == 2 and output["gate"]["passed"] is False
    assert "worse than champion v1" in output["gate"]["reason"]
    # judged on the same rows: the champion scored on the new version's test split
    assert output["gate"]["compared_on"] == "candidate test rows", output["gate"]["reason"]
    states = [s["name"] for s in stack.run(execution["executionArn"])["states"]]
    assert states[-2:] == ["Quality gate", "Keep as candidate"]
    assert {v["version"]: v["aliases"] for v in stack.models("gate")} == {1: ["champion"], 2: []}


def test_the_same_event_delivered_twice_trains_once(local_stack) -> None:
    since = upload(local_stack, "raw/twice/data.csv", synthetic_csv(300, 7))
    first = wait_for_execution(local_stack, since=since, key="raw/twice/data.csv")
    assert first["status"] == "SUCCEEDED"
    sfn = local_stack.client("stepfunctions")

    # EventBridge delivers at least once: the identical event starts a second execution.
    again = sfn.start_execution(stateMachineArn=local_stack.state_machine_arn, name="twice-redelivered",
                                input=first["input"])
    second = wait_for_execution(local_stack, since=first["startDate"], key="raw/twice/data.csv")
    while second["executionArn"] != again["executionArn"] or second["status"] == "RUNNING":
        second = sfn.describe_execution(executionArn=again["executionArn"])

    assert second["status"] == "SUCCEEDED"
    states = [s["name"] for s in client_stack(local_stack).run(again["executionArn"])["states"]]
    assert states == ["Claim upload", "Already processed?", "Skip duplicate delivery"]
    assert [v["version"] for v in client_stack(local_stack).models("twice")] == [1]


def test_concurrent_uploads_get_distinct_versions_and_a_consistent_history(local_stack) -> None:
    keys = [f"raw/concurrent/part-{i}.csv" for i in range(10)]
    since = upload(local_stack, keys[0], synthetic_csv(200, 100))
    with ThreadPoolExecutor(max_workers=9) as pool:
        list(pool.map(lambda i: upload(local_stack, keys[i], synthetic_csv(200, 100 + i)), range(1, 10)))

    executions = [wait_for_execution(local_stack, since=since, key=key, timeout=600) for key in keys]

    assert [e["status"] for e in executions] == ["SUCCEEDED"] * 10
    versions = sorted(json.loads(e["output"])["version"] for e in executions)
    assert versions == list(range(1, 11))
    promoted = sum(json.loads(e["output"]).get("promoted", False) for e in executions)
    history = list(reversed(client_stack(local_stack).history("concurrent")["entries"]))  # oldest first
    assert len(history) == promoted >= 1
    for before, after in itertools.pairwise(history):
        assert after["from"] == before["to"], "an alias update was lost"


def test_promote_and_rollback_change_what_the_api_serves(local_stack, monkeypatch) -> None:
    stack = client_stack(local_stack)
    for i, noise in enumerate((0.0, 0.0)):
        since = upload(local_stack, f"raw/flip/v{i + 1}.csv", synthetic_csv(400, 200 + i, noise))
        assert wait_for_execution(local_stack, since=since, key=f"raw/flip/v{i + 1}.csv")["status"] == "SUCCEEDED"
    record = {"x": 0.3, "colour": "blue", "z": 0.1}
    served = lambda: post(local_stack, "/models/flip/predict", record)[1]["version"]
    champion = stack.history("flip")["entries"][0]["to"]
    other = 1 if champion == 2 else 2

    # A promotion by hand passes the pipeline's gate: the verdict is the one the gate gives the
    # other version's recorded metrics against the champion's; refused, nothing moves until forced.
    from stepml.errors import GateRefused
    from stepml.registry import judge

    verdict = judge(stack.version("flip", other), stack.version("flip", champion))
    if not verdict["passed"]:
        history = stack.history("flip")
        with pytest.raises(GateRefused, match=f"refuses version {other}"):
            stack.promote("flip", other, "by hand", "test")
        assert stack.history("flip") == history and served() == champion
    answer = stack.promote("flip", other, "by hand: flip it", "test", force=True)
    assert (answer["forced"], answer["gate"]) == (not verdict["passed"], verdict)
    assert wait_until(lambda: served() == other)
    stack.rollback("flip", "undo", "test")  # not gated: the escape hatch
    assert wait_until(lambda: served() == champion)
    rolled_back, promoted = stack.history("flip", limit=2)["entries"]  # newest first
    assert (promoted["action"], promoted["actor"], promoted["reason"]) == ("promote", "test", "by hand: flip it")
    assert rolled_back["action"] == "rollback" and "gate" not in rolled_back


def wait_until(check, timeout: float = 40.0) -> bool:
    """The API picks up alias changes within its bounded staleness (documented as ≤ 30 s)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False




def test_a_daily_table_is_served_from_its_date_strings(local_stack) -> None:
    """Dates are features end to end: the inference function (onnxruntime + numpy) reads the date
    string a request sends with the format training chose, and the season shows in the answer."""
    from tests.functional.test_dates import daily_weather

    local_stack.client("s3").put_object(Bucket=local_stack.bucket, Key="config/weather-e2e.yaml",
                                        Body=b"target: temp_max\nparams: {max_iter: 60}\n")
    since = upload(local_stack, "raw/weather-e2e/weather.csv", daily_weather().to_csv(index=False).encode())
    execution = wait_for_execution(local_stack, since=since, key="raw/weather-e2e/weather.csv")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")

    url = "/models/weather-e2e/predict"
    day = {"precipitation": 0.0, "wind": 3.0, "temp_max": 20.0}  # the target too, as in the CSV
    status, body = post(local_stack, url, {"instances": [{**day, "date": "2016-01-15"}, {**day, "date": "2016-07-15"},
                                            {**day, "date": None}, {**day, "date": "someday"}]})
    assert status == 200, body
    january, july, _, _ = body["predictions"]
    assert july - january > 12  # the season: about 20 degrees apart in the table
    assert "date='someday' is not a date in the format the model was trained on" in " ".join(body["warnings"][3])
    status, body = post(local_stack, url, {**day, "date": 20160115})
    assert status == 422 and "expected a date string in the format ISO 8601" in body["message"]
