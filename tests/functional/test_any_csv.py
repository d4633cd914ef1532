"""Any tabular CSV runs through the stage handlers with only a config; bad inputs fail readably.

Given a CSV (and optionally config/<dataset>.yaml) in the bucket, When validate -> preprocess ->
train -> evaluate run, Then a model is registered; or the run fails with a cause a user can act on,
and nothing is registered.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stepml.auto_selection import FOLDS
from stepml.describe import describe_tuning, metric
from stepml.errors import ConfigError, DataError
from tests.functional.conftest import EVENT_BUCKET

#: Few boosting rounds: these tests check the plumbing, the benchmark checks the quality.
FAST = "params: {max_iter: 30}\n"


def upload(s3: Any, dataset: str, body: bytes, config: str | None = None) -> dict[str, Any]:
    """Put a CSV (and its config) in the bucket; the S3 'Object Created' event the rule would send."""
    if config is not None:
        s3.put_object(Bucket=EVENT_BUCKET, Key=f"config/{dataset}.yaml", Body=config.encode())
    key = f"raw/{dataset}/{dataset}.csv"
    put = s3.put_object(Bucket=EVENT_BUCKET, Key=key, Body=body)
    return {
        "event": {
            "detail-type": "Object Created",
            "source": "aws.s3",
            "detail": {
                "bucket": {"name": EVENT_BUCKET},
                "object": {"key": key, "size": len(body), "etag": put["ETag"].strip('"'), "version-id": put["VersionId"]},
            },
        },
        "run_id": f"run-{dataset}",
    }


def run_pipeline(invoke: Any, event: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every stage in turn; returns the evaluate stage's output and the train stage's."""
    state = invoke("validate", event)
    state = invoke("preprocess", state)
    trained = invoke("train", state)
    return invoke("evaluate", trained), trained


def registered(s3: Any) -> list[str]:
    listed = s3.list_objects_v2(Bucket=EVENT_BUCKET, Prefix="models/")
    return [item["Key"] for item in listed.get("Contents", [])]


def report(s3: Any, dataset: str) -> dict[str, Any]:
    body = s3.get_object(Bucket=EVENT_BUCKET, Key=f"runs/{dataset}/run-{dataset}/validation.json")["Body"]
    return json.loads(body.read())


def meta(s3: Any, dataset: str) -> dict[str, Any]:
    body = s3.get_object(Bucket=EVENT_BUCKET, Key=f"models/{dataset}/version-1/meta.json")["Body"]
    return json.loads(body.read())


def mixed_table(rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """Numbers with gaps, text with gaps, a boolean, a date and a numeric target."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(20, 200, rows)
    city = rng.choice(["Lyon", "Oslo", "Porto"], rows)
    garden = rng.choice([True, False], rows)
    price = size * 3000 + np.where(city == "Oslo", 90_000, 0) + garden * 25_000 + rng.normal(0, 5_000, rows)
    frame = pd.DataFrame({
        "size": size.round(1),
        "city": city,
        "garden": garden,
        "listed": pd.date_range("2020-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
        "price": price.round(0),
    })
    frame.loc[rng.choice(rows, 25, replace=False), "size"] = np.nan
    frame.loc[rng.choice(rows, 20, replace=False), "city"] = np.nan
    return frame


@pytest.mark.parametrize("loader", ["load_iris", "load_wine"])
def test_a_multiclass_csv_trains_with_only_a_config(s3, invoke, loader: str) -> None:
    import sklearn.datasets

    data = getattr(sklearn.datasets, loader)(as_frame=True).frame
    event = upload(s3, loader.removeprefix("load_"), data.to_csv(index=False).encode(), FAST)

    result, _ = run_pipeline(invoke, event)

    assert result["version"] == 1
    assert result["metrics"]["accuracy"] > 0.8 > result["baseline"]["accuracy"]
    assert 0.9 < result["metrics"]["roc_auc"] <= 1.0  # one-vs-rest over three classes
    evaluation = meta(s3, loader.removeprefix("load_"))["evaluation"]
    assert evaluation["labels"] == [0, 1, 2] and len(evaluation["confusion_matrix"]) == 3


def test_regression_with_missing_values_booleans_and_dates(s3, invoke) -> None:
    frame = mixed_table()
    event = upload(s3, "houses", frame.to_csv(index=False).encode(), FAST + "target: price\n")

    result, trained = run_pipeline(invoke, event)

    described = report(s3, "houses")
    assert described["task"] == "regression" and described["task_inferred"] is True
    roles = {c["name"]: c["role"] for c in described["columns"]}
    assert roles["listed"] == "date" and roles["garden"] == "feature"
    listed = next(c for c in described["columns"] if c["name"] == "listed")
    assert listed["format"] == "iso8601" and "year" in listed["parts"]  # trained on as its parts
    assert trained["dropped_rows"] == 0  # auto keeps rows with missing values: it imputes
    assert result["metrics"]["r2"] > 0.8 and result["metrics"]["rmse"] < result["baseline"]["rmse"]
    version = meta(s3, "houses")
    assert [f["name"] for f in version["schema"]] == ["size", "city", "garden", "listed"]
    sample = version["evaluation"]["predicted_vs_actual"]
    assert len(sample["actual"]) == len(sample["predicted"]) == version["evaluation"]["test_rows"]


def test_adult_official_style_split_uses_the_first_rows_as_test_set(s3, invoke, adult_csv) -> None:
    from tests.conftest import head_bytes

    config = FAST + "split: {test_rows: 500}\nprimary_metric: balanced_accuracy\ndrop_columns: [fnlwgt]\n"
    event = upload(s3, "adult", head_bytes(adult_csv, 2000), config)

    result, trained = run_pipeline(invoke, event)

    assert trained["test_rows"] == 500 and trained["train_rows"] == 1500
    assert trained["primary_metric"] == "balanced_accuracy"
    assert result["metrics"]["balanced_accuracy"] > 0.7  # classes weighted for this metric
    assert result["primary_metric"] == "balanced_accuracy"  # and the gate judges by it
    assert result["gate"]["metric"] == "balanced_accuracy"


def test_a_separate_test_file_is_the_test_set(s3, invoke) -> None:
    frame = mixed_table(300)
    s3.put_object(Bucket=EVENT_BUCKET, Key="data/houses/test.csv", Body=frame.iloc[:60].to_csv(index=False).encode())
    config = FAST + "target: price\nsplit: {test_file: data/houses/test.csv}\n"
    event = upload(s3, "houses", frame.iloc[60:].to_csv(index=False).encode(), config)

    _, trained = run_pipeline(invoke, event)

    assert trained["test_rows"] == 60 and trained["train_rows"] == 240


def test_tuning_searches_within_its_budget(s3, invoke) -> None:
    frame = mixed_table()
    event = upload(s3, "houses", frame.to_csv(index=False).encode(), "target: price\ntune: {budget_seconds: 5}\n")

    result, trained = run_pipeline(invoke, event)

    tuning = trained["tuning"]
    assert tuning["trials"] >= 1 and tuning["metric"] == "rmse"
    assert tuning["seconds"] < 30
    # the model averages the best few trials (exported and verified as ONNX by the pipeline), ranked by
    # validation loss: for squared error the same order as RMSE
    assert 1 <= len(tuning["ensemble"]) <= min(3, tuning["trials"]) and tuning["ensemble"][0] == tuning["best_params"]
    assert tuning["validation_scores"] == sorted(tuning["validation_scores"])  # rmse: lower first
    assert tuning["validation_losses"] == sorted(tuning["validation_losses"])
    assert all(isinstance(p["max_iter"], int) and p["max_iter"] >= 1 for p in tuning["ensemble"])
    assert result["metrics"]["rmse"] < result["baseline"]["rmse"]
    # scored on auto's folds (192 training rows: a small table), every training row once
    assert tuning["folds"] == FOLDS and tuning["validation_rows"] == trained["train_rows"]
    # and it estimated the final fit, within the budget's few seconds
    assert 0 < tuning["final_fit_seconds"] < 5
    # and recorded with the version, which `stepml models show` describes
    assert meta(s3, "houses")["tuning"] == tuning
    line = describe_tuning(tuning)
    assert line.startswith(f"tune: {tuning['trials']} trials in {tuning['seconds']} s on {FOLDS}-fold cross-validation")
    assert line.endswith(f"; validation rmse: best trial {metric(tuning['validation_score'])}, searched model "
                         f"{metric(tuning['searched_score'])}, forest {metric(tuning['forest_score'])}")


GOOD = "a,b,y\n" + "".join(f"{i},{i % 7},{'yes' if i % 3 else 'no'}\n" for i in range(40))


@pytest.mark.parametrize(
    ("body", "config", "error", "message"),
    [
        (b"a,y\n" + b"1,\n" * 30, None, DataError, "target column 'y' has no values"),
        (b"a,y\n" + b"1,x\n" * 30, None, DataError, "target column 'y' has a single class"),
        (b"a,y\n1,x\n2,z\n", None, DataError, "2 data rows; at least 20 are needed"),
        (GOOD.encode(), "target: label\n", DataError, "no target column 'label'"),
        (
            ("a,b,y\n" + "".join(f"{i},{i},{i % 2}\n" for i in range(30)) + "31,thirty,1\n32,n.a.,0\n").encode(),
            None, DataError, "column 'b' mixes numbers and text.*line 32: 'thirty', line 33: 'n.a.'",
        ),
        (b"a,b\n1,2\n1,2,3,4\n", None, DataError, "not a well-formed CSV.*line 3"),
        (b"a;b;y\n1;2;x\n", None, DataError, "semicolons"),
        (GOOD.encode(), "params: {n_trees: 5}\n", ConfigError, "params has parameter.*n_trees.*BoostedTreesClassifier"),
        (GOOD.encode(), "primary_metric: rmse\n", ConfigError, "primary_metric 'rmse' does not apply to classification"),
        (GOOD.encode(), "recipe: seed-b\n", ConfigError, "seed-b.*regression recipe"),
        (GOOD.encode(), "split: {test_file: data/demo/missing.csv}\n", DataError, "test_file.*does not exist"),
        (GOOD.encode(), "split: {test_rows: 40}\n", ConfigError, "test_rows is 40 but the upload has only 40 rows"),
    ],
)
def test_a_bad_input_fails_with_a_readable_cause_and_registers_nothing(
    s3, invoke, body: bytes, config: str | None, error: type, message: str
) -> None:
    event = upload(s3, "demo", body, config)
    with pytest.raises(error, match=message):
        run_pipeline(invoke, event)
    assert registered(s3) == []
