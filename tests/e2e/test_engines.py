"""Which engine trains an upload: Given the project's template on the local stack with small upload
limits (SparkThresholdBytes, MaxUploadBytes), When a user uploads CSVs of different sizes or names
an engine in the dataset's config, Then "Which engine?" sends each run down the Lambda path, the
Spark path, or fails it at once with a readable cause - decided from the real S3 event's size."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stepml.local import LocalStack
from stepml.stack import Stack
from tests.conftest import ROOT
from tests.e2e.conftest import upload, wait_for_execution
from tests.e2e.test_pipeline import model_keys, synthetic_csv

THRESHOLD = 8_000
MAXIMUM = 40_000
ROUTE = ["Claim upload", "Already processed?", "Which engine?"]


@pytest.fixture(scope="module")
def small_limits_stack() -> Iterator[LocalStack]:
    parameters = {"SparkThresholdBytes": str(THRESHOLD), "MaxUploadBytes": str(MAXIMUM)}
    with LocalStack(project_root=ROOT, port=0, api_port=0, parameters=parameters) as stack:
        yield stack


def states(stack: LocalStack, execution: dict) -> list[str]:
    client = Stack(endpoint_url=stack.endpoint_url, credentials=stack.admin_credentials.client_kwargs())
    return [s["name"] for s in client.run(execution["executionArn"])["states"]]


def run(stack: LocalStack, dataset: str, body: bytes, config: bytes | None = None) -> dict:
    if config is not None:
        stack.client("s3").put_object(Bucket=stack.bucket, Key=f"config/{dataset}.yaml", Body=config)
    key = f"raw/{dataset}/data.csv"
    since = upload(stack, key, body)
    return wait_for_execution(stack, since=since, key=key)


def test_a_small_upload_trains_on_lambda(small_limits_stack) -> None:
    body = synthetic_csv(150, 1)
    assert len(body) < THRESHOLD

    execution = run(small_limits_stack, "small", body)

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    taken = states(small_limits_stack, execution)
    assert taken[:4] == [*ROUTE, "Validate dataset"] and "Train on Spark" not in taken


def test_an_upload_over_every_limit_fails_at_once_and_readably(small_limits_stack) -> None:
    body = synthetic_csv(2500, 2)
    assert len(body) > MAXIMUM

    execution = run(small_limits_stack, "huge", body)

    assert execution["status"] == "FAILED"
    assert execution["error"] == "UploadTooLarge"
    assert f"is {len(body)} bytes, over the MaxUploadBytes of this stack ({MAXIMUM} bytes)" in execution["cause"]
    assert "raw/huge/data.csv" in execution["cause"]
    assert states(small_limits_stack, execution) == [*ROUTE, "Explain upload too large", "Upload too large"]
    assert model_keys(small_limits_stack, "huge") == []


def test_an_upload_over_the_threshold_takes_the_spark_path_without_config(small_limits_stack) -> None:
    body = synthetic_csv(400, 3)
    assert THRESHOLD < len(body) < MAXIMUM

    execution = run(small_limits_stack, "large", body)

    taken = states(small_limits_stack, execution)
    assert taken[:4] == [*ROUTE, "Train on Spark"] and "Validate dataset" not in taken


def test_engine_lambda_in_the_config_keeps_a_large_upload_on_lambda(small_limits_stack) -> None:
    body = synthetic_csv(400, 4)
    assert THRESHOLD < len(body) < MAXIMUM

    execution = run(small_limits_stack, "pinned", body, config=b"target: label\nengine: lambda\n")

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert states(small_limits_stack, execution)[:4] == [*ROUTE, "Validate dataset"]


def test_engine_spark_in_the_config_sends_a_small_upload_to_spark(small_limits_stack) -> None:
    execution = run(small_limits_stack, "tospark", synthetic_csv(150, 5), config=b"target: label\nengine: spark\n")

    assert states(small_limits_stack, execution)[:4] == [*ROUTE, "Train on Spark"]


def test_a_recipe_the_lambda_layer_cannot_hold_goes_to_spark(small_limits_stack) -> None:
    execution = run(small_limits_stack, "seedb", synthetic_csv(150, 6), config=b"target: x\nrecipe: seed-b\n")

    assert states(small_limits_stack, execution)[:4] == [*ROUTE, "Train on Spark"]


def test_an_engine_that_cannot_train_the_recipe_is_refused_before_any_data_is_read(small_limits_stack) -> None:
    execution = run(small_limits_stack, "mismatch", synthetic_csv(150, 7),
                    config=b"target: x\nrecipe: seed-b\nengine: lambda\n")

    assert execution["status"] == "FAILED" and execution["error"] == "ConfigError"
    assert "config/mismatch.yaml: engine 'lambda' trains recipe auto or seed-a, not 'seed-b'" in execution["cause"]
    assert states(small_limits_stack, execution)[0] == "Claim upload"
    assert "Validate dataset" not in states(small_limits_stack, execution)
