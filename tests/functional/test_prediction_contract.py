"""The prediction contract follows what the served pipeline can do: Given Adult trained through the
pipeline's own stages (moto), When rows are sent as they stand in its CSV - missing values as null,
every original column including the target - Then each gets a prediction; only a recipe that
cannot serve a missing value refuses one, saying why, and a column never seen in training is a 422."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from stepml import keys
from stepml.api import handle, openapi_document
from stepml.serving import ModelServer
from stepml.settings import Settings
from stepml.storage import S3Store
from tests.conftest import head_bytes
from tests.functional.conftest import EVENT_BUCKET, load_event

TRAINING_ROWS = 2000
HELD_OUT_ROWS = 400
SEED_A = "recipe: seed-a\ndrop_columns: [fnlwgt]\n"


def train_through_stages(s3: Any, invoke: Any, dataset: str, body: bytes, config: str | None = None) -> int:
    """Upload ``body`` as raw/<dataset>/ and run every stage on it, as the state machine does."""
    if config is not None:
        s3.put_object(Bucket=EVENT_BUCKET, Key=f"config/{dataset}.yaml", Body=config.encode())
    key = f"raw/{dataset}/{dataset}.csv"
    put = s3.put_object(Bucket=EVENT_BUCKET, Key=key, Body=body)
    event = load_event("validate")
    event["run_id"] = f"run-{dataset}"
    event["event"]["detail"]["object"].update(
        {"key": key, "size": len(body), "etag": put["ETag"].strip('"'), "version-id": put["VersionId"]}
    )
    state = invoke("validate", event)
    for stage in ("preprocess", "train", "verify", "evaluate", "promote"):
        state = invoke(stage, state)
    assert state["promoted"] is True
    return int(state["version"])


def csv_records(path: Path, skip: int, count: int) -> list[dict[str, Any]]:
    """Rows of the CSV as a client sends them: every column, numbers as numbers, '?' as null."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))[skip : skip + count]

    def value(text: str) -> Any:
        text = text.strip()
        if text == "?":
            return None
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                return text

    return [{name: value(text) for name, text in row.items()} for row in rows]


@pytest.fixture
def call(s3: Any) -> Any:
    server = ModelServer(S3Store(Settings(bucket=EVENT_BUCKET)))

    def _call(route: str, name: str, body: Any = None) -> tuple[int, Any]:
        event = {"version": "2.0", "routeKey": route, "pathParameters": {"name": name},
                 "body": None if body is None else json.dumps(body)}
        result = handle(event, server)
        return result["statusCode"], json.loads(result["body"])

    return _call


PREDICT = "POST /models/{name}/predict"
DESCRIBE = "GET /models/{name}"


def conforms(body: Any, component: str) -> None:
    """The body matches the OpenAPI document's component (its $refs resolved in the document)."""
    document = openapi_document()
    jsonschema.validate(body, {**document["components"]["schemas"][component], "components": document["components"]})


def test_adult_rows_as_they_stand_in_the_csv_all_get_predictions(s3, invoke, call, adult_csv) -> None:
    train_through_stages(s3, invoke, "adult", head_bytes(adult_csv, TRAINING_ROWS))
    held_out = csv_records(adult_csv, TRAINING_ROWS, HELD_OUT_ROWS)
    incomplete = [i for i, r in enumerate(held_out) if r["workclass"] is None or r["occupation"] is None]
    assert incomplete, "the held-out rows should include some with a missing workclass/occupation"

    status, body = call(PREDICT, "adult", {"instances": held_out})

    assert status == 200, body
    assert len(body["predictions"]) == HELD_OUT_ROWS
    accuracy = sum(p == r["income"] for p, r in zip(body["predictions"], held_out, strict=True)) / HELD_OUT_ROWS
    assert accuracy > 0.78
    # the target is a column of the training CSV: accepted, ignored, named once per row
    assert all(w.count("ignored column(s) the model does not use: income") == 1 for w in body["warnings"])
    # workclass and occupation were missing in training too: no warning about them
    assert not any("workclass" in w or "occupation" in w for row in body["warnings"] for w in row)


def test_the_schema_says_what_may_be_missing_or_ignored_and_unknown_columns_stay_422(
    s3, invoke, call, adult_csv
) -> None:
    train_through_stages(s3, invoke, "adult", head_bytes(adult_csv, TRAINING_ROWS))
    status, body = call(DESCRIBE, "adult")
    assert status == 200
    conforms(body, "ModelDescription")
    features = {f["name"]: f for f in body["features"]}
    assert features["workclass"] | {"nullable": True, "required": False, "missing_in_training": True} == \
        features["workclass"]
    assert features["age"]["nullable"] is True and features["age"]["missing_in_training"] is False
    assert body["ignored_columns"] == [{"name": "income", "reason": "target"}]

    # a feature never missing in training is still served, with a warning
    record = csv_records(adult_csv, TRAINING_ROWS, 1)[0]
    status, body = call(PREDICT, "adult", {**record, "age": None, "education": None})
    assert status == 200, body
    assert body["warnings"][0][1:] == ["age is missing and was never missing in training",
                                       "education is missing and was never missing in training"]
    conforms(body, "Prediction")

    # a column never seen in training is still refused
    status, body = call(PREDICT, "adult", {"instances": [record, {**record, "zip": "02139"}]})
    assert status == 422
    assert body["errors"] == [{"row": 1, "field": "zip", "message": "unknown field"}]


def test_seed_a_refuses_a_missing_category_saying_why_and_ignores_dropped_columns(
    s3, invoke, call, adult_csv
) -> None:
    train_through_stages(s3, invoke, "adult-complete", head_bytes(adult_csv, TRAINING_ROWS), SEED_A)
    held_out = csv_records(adult_csv, TRAINING_ROWS, HELD_OUT_ROWS)
    complete = next(r for r in held_out if None not in r.values())
    incomplete = next(i for i, r in enumerate(held_out) if r["workclass"] is None)

    status, body = call(PREDICT, "adult-complete", complete)
    assert status == 200, body
    assert body["warnings"] == [["ignored column(s) the model does not use: fnlwgt, income"]]

    status, body = call(PREDICT, "adult-complete", {"instances": held_out})
    assert status == 422
    refused = next(e for e in body["errors"] if e["row"] == incomplete and e["field"] == "workclass")
    assert refused["message"] == (
        "missing required field: recipe 'seed-a' trains only on complete rows (it drops rows with a "
        "missing value), so this model cannot serve a missing value; send one"
    )
    status, body = call(DESCRIBE, "adult-complete")
    conforms(body, "ModelDescription")
    features = {f["name"]: f for f in body["features"]}
    assert features["workclass"]["nullable"] is False and features["workclass"]["required"] is True
    assert body["ignored_columns"] == [{"name": "fnlwgt", "reason": "drop_columns"},
                                       {"name": "income", "reason": "target"}]


def test_the_openapi_document_describes_nullable_features_and_ignored_columns() -> None:
    schemas = openapi_document()["components"]["schemas"]
    assert {"nullable", "missing_in_training"} <= set(schemas["Feature"]["properties"])
    assert "ignored_columns" in schemas["ModelDescription"]["properties"]
    assert "ignored" in schemas["Record"]["description"] and "null" in schemas["Record"]["description"]



def test_a_row_number_on_a_table_sorted_by_its_target_is_not_a_feature_and_is_ignored_when_sent(
    s3, invoke, call
) -> None:
    # Given a table sorted by its target, with a row number that would predict it perfectly
    rows = 300
    lines = ["row,size,colour,label"]
    for i in range(rows):
        label = "big" if i >= rows // 2 else "small"
        size = (i % 37) + (20 if label == "big" else 0)  # a real but imperfect signal
        lines.append(f"{i + 1},{size},{'red' if i % 3 else 'blue'},{label}")
    body = ("\n".join(lines) + "\n").encode()

    # When it trains with no config at all
    train_through_stages(s3, invoke, "sorted", body)

    # Then the report says the row number was left out, and why
    store = S3Store(Settings(bucket=EVENT_BUCKET))
    report = store.get_json(keys.validation_report("sorted", "run-sorted"))
    assert {c["name"]: c["role"] for c in report["columns"]}["row"] == "id"
    assert report["dropped_columns"] == {"row": "id"}
    assert any(w.startswith("column 'row' is unique per row") and "an identifier, not a feature" in w
               for w in report["warnings"])
    status, described = call(DESCRIBE, "sorted")
    assert status == 200
    assert [f["name"] for f in described["features"]] == ["size", "colour"]
    assert {"name": "row", "reason": "id"} in described["ignored_columns"]

    # and a row sent with its row number (even one never seen) is accepted, the column ignored
    status, predicted = call(PREDICT, "sorted", {"row": 999_999, "size": 40, "colour": "red", "label": "big"})
    assert status == 200, predicted
    assert predicted["predictions"] == ["big"]
    assert predicted["warnings"] == [["ignored column(s) the model does not use: label, row"]]


def test_a_category_written_with_spaces_around_it_is_served_as_written_or_trimmed(s3, invoke, call) -> None:
    # Given a CSV whose text has spaces around it, as CSVs write it: UCI's adult.data after each
    # comma (" red"), Rdatasets' SumHes a trailing space in a quoted name ("PAPUA N.GUINEA ")
    lines = ["size,colour,price"]
    for i in range(240):
        colour = (" red", '"blue "', "green")[i % 3]
        level = {" red": 100, '"blue "': 200, "green": 300}[colour]
        lines.append(f"{i % 20},{colour},{level + i % 20}")
    train_through_stages(s3, invoke, "padded", ("\n".join(lines) + "\n").encode())
    # When a client sends a colour trimmed, as written in the CSV, or padded otherwise
    status, described = call(DESCRIBE, "padded")
    assert status == 200
    colour = next(f for f in described["features"] if f["name"] == "colour")
    assert sorted(colour["categories"]) == ["blue", "green", "red"]  # what training saw: trimmed
    answers = {}
    for sent in ("blue", "blue ", " blue", "red", " red", "red  "):
        status, predicted = call(PREDICT, "padded", {"size": 5, "colour": sent})
        assert status == 200, predicted
        assert predicted["warnings"] == [[]], (sent, predicted["warnings"])  # never an unseen category
        answers[sent] = predicted["predictions"][0]
    # Then each is the category it names: the same answer however it is padded
    assert answers["blue"] == answers["blue "] == answers[" blue"] and 195 < answers["blue"] < 215
    assert answers["red"] == answers[" red"] == answers["red  "] and 95 < answers["red"] < 115
