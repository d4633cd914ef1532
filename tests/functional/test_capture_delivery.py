"""The capture path and feedback through the real local stack: Given the template deployed offline
(the inference function's log group → subscription filter → Firehose → the data bucket), When a
consumer signs prediction and feedback requests to the local HTTP API, Then every prediction
request leaves exactly one capture record under capture/<model>/dt=<day>/ naming the caller, a
model set to ``off`` leaves none, ``hashed`` stores no raw input, and labels land under feedback/."""

from __future__ import annotations

import gzip
import http.client
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from stepml import capture, monitoring, registry
from stepml.client import ApiClient, signed_headers
from stepml.errors import RequestError
from stepml.local import LocalStack, firehose, iam
from stepml.local.endpoint import ACCOUNT_ID
from stepml.registry import ModelRegistry
from stepml.stack import Stack
from tests.conftest import ROOT
from tests.functional.inference_models import SCHEMA, classifier_onnx, record

CONSUMER = f"arn:aws:iam::{ACCOUNT_ID}:user/capture-consumer"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(ROOT, port=0, api_port=0, stack_name="stepml-capture") as running:
        models = ModelRegistry(_store(running))
        for name, mode in (("adult", None), ("secret", "hashed"), ("quiet", "off")):
            meta: dict[str, Any] = {"dataset": name, "task": "classification", "target": "income", "recipe": "auto",
                                    "schema": SCHEMA, "evaluation": {"primary_metric": "accuracy", "metrics": {}}}
            if mode:
                meta["config"] = {"capture": mode}
            version = models.register_version(name, f"run-{name}", {"model.onnx": classifier_onnx()}, meta)["version"]
            models.set_alias(name, registry.CHAMPION, version, "test")
        yield running


def _store(stack: LocalStack) -> Any:
    assert stack.admin_credentials is not None
    return Stack(stack_name=stack.stack_name, endpoint_url=stack.endpoint_url,
                 credentials=stack.admin_credentials.client_kwargs()).store


@pytest.fixture(scope="module")
def consumer(stack: LocalStack) -> Mapping[str, str]:
    user = iam.create_user(ACCOUNT_ID, stack.region, "capture-consumer", stack.outputs["ConsumerPolicyArn"])
    return user.client_kwargs()


def _post(stack: LocalStack, path: str, body: Any, credentials: Mapping[str, str]) -> tuple[int, Any, str]:
    """One signed POST; (status, body, apigw-requestid header)."""
    address = urlsplit(stack.api_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=60)
    try:
        payload = json.dumps(body).encode()
        url = f"http://{address.hostname}:{address.port}{path}"
        headers = signed_headers("POST", url, payload, credentials, stack.region, {"Content-Type": "application/json"})
        connection.request("POST", path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read()), response.getheader("apigw-requestid") or ""
    finally:
        connection.close()


def _captured(stack: LocalStack) -> dict[str, list[tuple[str, bytes]]]:
    """The delivered capture objects by model: (key, raw body)."""
    assert firehose.drain(), "the local delivery stream did not finish"
    s3 = stack.client("s3")
    found: dict[str, list[tuple[str, bytes]]] = {}
    for item in s3.list_objects_v2(Bucket=stack.bucket, Prefix="capture/").get("Contents", []):
        body = s3.get_object(Bucket=stack.bucket, Key=item["Key"])["Body"].read()
        found.setdefault(item["Key"].split("/")[1], []).append((item["Key"], body))
    return found


def test_every_prediction_request_leaves_one_record_per_mode(stack: LocalStack, consumer: Mapping[str, str]) -> None:
    sent = {
        "single": _post(stack, "/models/adult/predict", record(), consumer),
        "batch": _post(stack, "/models/adult/predict", {"instances": [record(), record(age=60)]}, consumer),
        "refused": _post(stack, "/models/adult/predict", {"age": "old"}, consumer),
        "hashed": _post(stack, "/models/secret/predict", record(job="private-value"), consumer),
        "off": _post(stack, "/models/quiet/predict", record(), consumer),
    }
    assert [status for status, _, _ in sent.values()] == [200, 200, 422, 200, 200]
    assert all(request_id for _, _, request_id in sent.values())
    delivered = _captured(stack)
    assert "quiet" not in delivered, "capture: off leaves no record"
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    for model, objects in delivered.items():
        for key, body in objects:
            assert key.startswith(f"capture/{model}/dt={today}/") and key.endswith(".gz"), key
            lines = [line for line in gzip.decompress(body).splitlines() if line.strip()]
            # Only capture lines pass the subscription filter (no metrics or runtime lines).
            assert all(json.loads(line).get("stepml_capture") == 1 for line in lines), lines
    records = {r["request_id"]: r for objects in delivered.values() for _, body in objects
               for r in capture.read_records(body)}
    expected = {name: request_id for name, (_, _, request_id) in sent.items() if name != "off"}
    assert sorted(records) == sorted(expected.values()), "exactly one record per request"
    assert {r["caller"] for r in records.values()} == {CONSUMER}
    batch = records[expected["batch"]]
    assert batch["model"] == "adult" and batch["inputs"] == [record(), record(age=60)]
    assert len(batch["outputs"]) == 2 and batch["status"] == 200 and batch["mode"] == "full"
    refused = records[expected["refused"]]
    assert refused["status"] == 422 and refused["outputs"] == [] and "age" in refused["error"]
    hashed = records[expected["hashed"]]
    assert hashed["inputs"] is None and hashed["input_hashes"] == [capture.row_hash(record(job="private-value"))]
    assert not any(b"private-value" in gzip.decompress(body) for _, body in delivered["secret"])
    assert all(not stream.failures for stream in stack.delivery_streams)


def test_feedback_lands_under_the_model_and_reads_back(stack: LocalStack, consumer: Mapping[str, str]) -> None:
    # The client hands back the request id (the apigw-requestid header) that the capture is filed by.
    answer = ApiClient(stack.api_url, stack.region, consumer).post("/models/adult/predict", record())
    request_id = answer.request_id or ""
    assert answer.status == 200 and request_id
    assert [r["request_id"] for objects in _captured(stack).values() for _, body in objects
            for r in capture.read_records(body)].count(request_id) == 1
    assert _post(stack, "/models/adult/feedback", {"request_id": request_id, "actual": ">50K"}, consumer)[:2] == (
        200, {"model": "adult", "accepted": 1})
    items = {"items": [{"request_id": request_id, "row": 0, "actual": "<=50K"}, {"request_id": "other", "actual": 3}]}
    assert _post(stack, "/models/adult/feedback", items, consumer)[:2] == (200, {"model": "adult", "accepted": 2})
    # Refused whole, naming the item and field; nothing is written.
    status, body, _ = _post(stack, "/models/adult/feedback",
                            {"items": [{"request_id": "a", "actual": 1}, {"request_id": "b", "row": -1, "actual": 1}]},
                            consumer)
    assert status == 422 and body["errors"][0]["row"] == 1 and body["errors"][0]["field"] == "row"
    status, body, _ = _post(stack, "/models/adult/feedback", {"request_id": "a", "actual": 1, "extra": 2}, consumer)
    assert status == 422 and body["errors"][0]["field"] == "extra"
    assert _post(stack, "/models/nosuch/feedback", {"request_id": "a", "actual": 1}, consumer)[0] == 404
    store = _store(stack)
    stored = [json.loads(line) for key in store.list_keys("feedback/adult/")
              for line in store.get_bytes(key).decode().splitlines()]
    assert {label["caller"] for label in stored} == {CONSUMER} and len(stored) == 3
    assert all(label["time"].endswith("Z") for label in stored)
    problems: list[str] = []
    assert sorted(monitoring.load_feedback(store, "adult", problems).items()) == sorted(
        [((request_id, 0), "<=50K"), (("other", 0), 3)]) and problems == []  # the row's second label won


def test_a_label_csv_is_checked_then_uploaded_and_read_back(stack: LocalStack, tmp_path: Path) -> None:
    assert stack.admin_credentials is not None
    user = Stack(stack_name=stack.stack_name, endpoint_url=stack.endpoint_url,
                 credentials=stack.admin_credentials.client_kwargs())
    bad = tmp_path / "bad.csv"
    bad.write_text("request_id,row,actual\nr1,zero,>50K\n")
    with pytest.raises(RequestError, match=r"bad.csv line 2: column row must be a whole number"):
        user.upload_feedback("quiet", bad)
    good = tmp_path / "labels.csv"
    good.write_text("request_id,actual\nr1,>50K\nr2,<=50K\n")
    key, count = user.upload_feedback("quiet", good)
    assert (key, count) == ("feedback/quiet/labels.csv", 2)
    assert monitoring.load_feedback(user.store, "quiet", []) == {("r1", 0): ">50K", ("r2", 0): "<=50K"}
