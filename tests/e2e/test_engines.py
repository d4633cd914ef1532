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
from tests.e2e.test_pipeline import model_keys, post, synthetic_csv

THRESHOLD = 8_000
MAXIMUM = 200_000
ROUTE = ["Claim upload", "Already processed?", "Which engine?"]


@pytest.fixture(scope="module")
def small_limits_stack() -> Iterator[LocalStack]:
    parameters = {"SparkThresholdBytes": str(THRESHOLD), "MaxUploadBytes": str(MAXIMUM)}
    with LocalStack(project_root=ROOT, port=0, api_port=0, parameters=parameters, stack_name="stepml-engines") as stack:
        yield stack


def states(stack: LocalStack, execution: dict) -> list[str]:
    client = Stack(stack_name=stack.stack_name, endpoint_url=stack.endpoint_url, credentials=stack.admin_credentials.client_kwargs())
    return [s["name"] for s in client.run(execution["executionArn"])["states"]]


#: Seconds a run that trains on Spark may take: a JVM start, the Spark jobs and XGBoost took
#: 1-2 min on 2 busy cores, 4-6 min when the machine was shared by five test runs.
SPARK_RUN_SECONDS = 600.0


def run(stack: LocalStack, dataset: str, body: bytes, config: bytes | None = None, timeout: float = 300.0) -> dict:
    if config is not None:
        stack.client("s3").put_object(Bucket=stack.bucket, Key=f"config/{dataset}.yaml", Body=config)
    key = f"raw/{dataset}/data.csv"
    since = upload(stack, key, body)
    return wait_for_execution(stack, since=since, key=key, timeout=timeout)


def test_a_small_upload_trains_on_lambda(small_limits_stack) -> None:
    body = synthetic_csv(150, 1)
    assert len(body) < THRESHOLD

    execution = run(small_limits_stack, "small", body)

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    taken = states(small_limits_stack, execution)
    assert taken[:4] == [*ROUTE, "Validate dataset"] and "Train on Spark" not in taken


def test_an_upload_over_every_limit_fails_at_once_and_readably(small_limits_stack) -> None:
    body = synthetic_csv(12_000, 2)
    assert len(body) > MAXIMUM

    execution = run(small_limits_stack, "huge", body)

    assert execution["status"] == "FAILED"
    assert execution["error"] == "UploadTooLarge"
    assert f"is {len(body)} bytes, over the MaxUploadBytes of this stack ({MAXIMUM} bytes)" in execution["cause"]
    assert "raw/huge/data.csv" in execution["cause"]
    assert states(small_limits_stack, execution) == [*ROUTE, "Explain upload too large", "Upload too large"]
    assert model_keys(small_limits_stack, "huge") == []


def test_engine_lambda_in_the_config_keeps_a_large_upload_on_lambda(small_limits_stack) -> None:
    body = synthetic_csv(400, 4)
    assert THRESHOLD < len(body) < MAXIMUM

    execution = run(small_limits_stack, "pinned", body, config=b"target: label\nengine: lambda\n")

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert states(small_limits_stack, execution)[:4] == [*ROUTE, "Validate dataset"]


def test_an_engine_that_cannot_train_the_recipe_is_refused_before_any_data_is_read(small_limits_stack) -> None:
    execution = run(small_limits_stack, "mismatch", synthetic_csv(150, 7),
                    config=b"target: x\nrecipe: seed-b\nengine: lambda\n")

    assert execution["status"] == "FAILED" and execution["error"] == "ConfigError"
    assert "config/mismatch.yaml: engine 'lambda' trains recipe auto or seed-a, not 'seed-b'" in execution["cause"]
    assert states(small_limits_stack, execution)[0] == "Claim upload"
    assert "Validate dataset" not in states(small_limits_stack, execution)


def regression_csv(rows: int, seed: int) -> bytes:
    """A learnable regression table: a price from a number, a category and noise."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    size = rng.uniform(20, 200, size=rows).round(1)
    area = rng.choice(["north", "south", "centre"], size=rows)
    price = 1000 * size + np.select([area == "centre", area == "north"], [50_000, 10_000], 0) + rng.normal(0, 5000, rows)
    frame = pd.DataFrame({"size": size, "area": area, "price": price.round(0)})
    frame.loc[::37, "size"] = np.nan  # missing numbers: imputed inside the exported pipeline
    return frame.to_csv(index=False).encode()


def test_an_upload_over_the_threshold_trains_through_glue_registers_a_verified_version_and_serves_it(
    small_limits_stack,
) -> None:
    # No config: the size alone sends it to Spark (the one successful Spark run of the suite: a JVM
    # start and a Spark job cost about a minute on 2 busy cores).
    body = regression_csv(3000, 8)
    assert THRESHOLD < len(body) < MAXIMUM

    execution = run(small_limits_stack, "sparkprice", body, timeout=SPARK_RUN_SECONDS)

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    taken = states(small_limits_stack, execution)
    assert taken[:6] == [*ROUTE, "Train on Spark", "Read Spark result", "Verify ONNX export"]
    assert "Validate dataset" not in taken and "Train model" not in taken
    client = Stack(stack_name=small_limits_stack.stack_name, endpoint_url=small_limits_stack.endpoint_url, credentials=small_limits_stack.admin_credentials.client_kwargs())
    [version] = client.models("sparkprice")
    assert version["evaluation"]["metrics"]["r2"] > 0.9
    assert version["lineage"]["execution_arn"] == execution["executionArn"]
    status, body = post(small_limits_stack, "/models/sparkprice/predict", {"size": 100, "area": "centre"})
    assert status == 200, body
    assert body["version"] == 1 and 120_000 < body["predictions"][0] < 180_000
    status, body = post(small_limits_stack, "/models/sparkprice/predict", {"size": None, "area": "south"})
    assert status == 200, body


def test_a_failing_spark_job_ends_the_run_with_its_readable_cause_and_registers_nothing(small_limits_stack) -> None:
    # engine: spark sends a small upload to Spark; its config names a column the CSV lacks.
    execution = run(small_limits_stack, "sparkbad", regression_csv(500, 9), config=b"target: cost\nengine: spark\n")

    assert execution["status"] == "FAILED"
    assert execution["cause"].startswith("Train on Spark failed (Glue job ")
    assert "FAILED): DataError: " in execution["cause"] and "no target column 'cost'" in execution["cause"]
    assert execution["cause"].endswith("Nothing was registered.")
    assert model_keys(small_limits_stack, "sparkbad") == []


def classification_csv(rows: int, seed: int) -> bytes:
    """Three text classes from a number and a category (red adds 1.5 to the score: the model needs
    both), one class rarer than the others; written as UCI's adult.data writes its text, a space
    after each comma (`` red``, `` high``): the executors must read the values as the sample was."""
    import numpy as np

    rng = np.random.default_rng(seed)
    score = rng.normal(size=rows)
    colour = rng.choice(["red", "blue"], size=rows)
    shifted = score + np.where(colour == "red", 1.5, 0.0)
    level = np.select([shifted < -0.3, shifted < 1.6], ["low", "mid"], "high")
    lines = [f"{s:.3f}, {c}, {v}" for s, c, v in zip(score, colour, level, strict=True)]
    return ("score,colour,level\n" + "\n".join(lines) + "\n").encode()


def test_a_classification_trained_on_spark_answers_in_the_users_labels_with_probabilities(small_limits_stack) -> None:
    # engine: spark sends a small upload to Glue; its text labels become codes 0..K-1 for
    # XGBoost and come back as the user's labels from the registry and the API. The first 300
    # rows are the test set (split.test_rows), as on the Lambda path.
    execution = run(small_limits_stack, "sparklevel", classification_csv(1500, 10),
                    config=b"target: level\nengine: spark\nsplit:\n  test_rows: 300\n", timeout=SPARK_RUN_SECONDS)

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    taken = states(small_limits_stack, execution)
    assert "Train on Spark" in taken and "Verify ONNX export" in taken and "Train model" not in taken
    client = Stack(stack_name=small_limits_stack.stack_name, endpoint_url=small_limits_stack.endpoint_url,
                   credentials=small_limits_stack.admin_credentials.client_kwargs())
    [version] = client.models("sparklevel")
    assert (version["train_rows"], version["test_rows"]) == (1200, 300)
    assert version["evaluation"]["labels"] == ["high", "low", "mid"]
    assert version["evaluation"]["metrics"]["accuracy"] > 0.9
    status, body = post(small_limits_stack, "/models/sparklevel/predict",
                        {"instances": [{"score": -2.0, "colour": "blue"}, {"score": 2.5, "colour": "red"},
                                       {"score": 0.5, "colour": "red"}, {"score": 0.5, "colour": " blue"}]})
    assert status == 200, body
    # the colour decides the last two: red lifts 0.5 to 2.0 (high), blue leaves it mid
    assert body["predictions"] == ["low", "high", "high", "mid"]
    assert body["warnings"] == [[], [], [], []]  # " blue" is blue: no unseen category
    assert [sorted(row) for row in body["probabilities"]] == [["high", "low", "mid"]] * 4
    assert body["probabilities"][0]["low"] > 0.8 and body["probabilities"][1]["high"] > 0.8
