"""The prediction API against moto: Given registered ONNX models, When a request arrives as an API
Gateway v2 event, Then the response has the documented status and shape - never a 5xx for bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from stepml import registry
from stepml.api import handle
from stepml.inputs import MAX_BODY_BYTES, MAX_INSTANCES
from stepml.registry import ModelRegistry
from stepml.serving import ModelServer
from stepml.settings import Settings
from stepml.storage import S3Store
from tests.functional.conftest import EVENT_BUCKET
from tests.functional.inference_models import (
    SCHEMA,
    classifier_onnx,
    per_feature_onnx,
    record,
    regressor_onnx,
)


def register(store: S3Store, name: str, model: bytes, task: str, promote: bool = True, recipe: str = "auto") -> int:
    # A version as registered before `nullable`, `missing_in_training` and `ignored_columns` were
    # recorded (test_prediction_contract.py serves versions the pipeline's stages register).
    meta = {
        "dataset": name,
        "task": task,
        "target": "income" if task == "classification" else "value",
        "recipe": recipe,
        "schema": SCHEMA,
        "evaluation": {"primary_metric": "accuracy", "metrics": {"accuracy": 0.9}, "baseline": {"accuracy": 0.5}},
    }
    models = ModelRegistry(store)
    # One run per registration: a run registers one version (a retried run gets the same one back).
    run = f"run-{name}-{len(models.list_versions(name)) + 1}"
    version = models.register_version(name, run, {"model.onnx": model}, meta)["version"]
    if promote:
        models.set_alias(name, registry.CHAMPION, version, "test")
    return int(version)


@pytest.fixture
def store(s3: Any) -> S3Store:
    return S3Store(Settings(bucket=EVENT_BUCKET))


@pytest.fixture
def models(store: S3Store) -> dict[str, int]:
    return {
        "adult": register(store, "adult", classifier_onnx(), "classification"),
        "houses": register(store, "houses", regressor_onnx(), "regression"),
    }


class Clock:
    """A clock the test moves by hand (the alias cache's notion of time)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def unseen_counts() -> list[tuple[str, int, int]]:
    return []


@pytest.fixture
def server(store: S3Store, clock: Clock, unseen_counts: list[tuple[str, int, int]]) -> ModelServer:
    return ModelServer(
        store, alias_ttl=5.0, clock=clock, on_unseen_categories=lambda *args: unseen_counts.append(args)
    )


Call = Callable[..., tuple[int, Any]]


@pytest.fixture
def call(server: ModelServer) -> Call:
    def _call(route: str, name: str | None = None, body: Any = None, query: dict[str, str] | None = None,
              raw: str | None = None) -> tuple[int, Any]:
        event: dict[str, Any] = {"version": "2.0", "routeKey": route, "isBase64Encoded": False}
        if name is not None:
            event["pathParameters"] = {"name": name}
        if query:
            event["queryStringParameters"] = query
        if raw is not None:
            event["body"] = raw
        elif body is not None:
            event["body"] = json.dumps(body)
        result = handle(event, server)
        assert result["headers"]["content-type"] == "application/json"
        return result["statusCode"], json.loads(result["body"])

    return _call


PREDICT = "POST /models/{name}/predict"


def test_a_single_record_gets_its_label_probabilities_and_version(models, call) -> None:
    status, body = call(PREDICT, "adult", record())
    assert status == 200
    assert body["model"] == "adult" and body["version"] == models["adult"]
    assert body["predictions"][0] in {"<=50K", ">50K"}
    assert set(body["probabilities"][0]) == {"<=50K", ">50K"}
    assert sum(body["probabilities"][0].values()) == pytest.approx(1.0, abs=1e-5)
    assert body["warnings"] == [[]]


def test_a_batch_gets_one_prediction_per_record_in_order(models, call) -> None:
    young, old = record(age=18, job="a"), record(age=85, job="b")
    status, body = call(PREDICT, "adult", {"instances": [young, old, young]})
    assert status == 200
    assert len(body["predictions"]) == 3 and body["predictions"][0] == body["predictions"][2]
    assert body["probabilities"][0] == body["probabilities"][2]


def test_a_version_exported_with_one_input_per_feature_is_still_served(models, store, call) -> None:
    """Versions registered before the export took input blocks stay servable (and rollback-able)."""
    version = register(store, "legacy", per_feature_onnx(classifier_onnx()), "classification")
    batch = {"instances": [record(), record(age=85, job="b", city=None), record(**{"hours-per-week": None})]}
    status, body = call(PREDICT, "legacy", batch)
    assert status == 200 and body["version"] == version
    assert body == {**call(PREDICT, "adult", batch)[1], "model": "legacy", "version": version}


def test_a_regressor_returns_numbers_and_no_probabilities(models, call) -> None:
    status, body = call(PREDICT, "houses", {"instances": [record(), record(age=80)]})
    assert status == 200
    assert all(isinstance(v, float) for v in body["predictions"]) and "probabilities" not in body


def test_a_row_as_it_stands_in_the_csv_is_served_as_training_read_it(models, call) -> None:
    # Given a row read from the training CSV with csv.DictReader: every value a string, numbers as a
    # spreadsheet writes them, "NA" and "" for missing cells, a header name with spaces around it
    as_csv = {" age ": "39", "hours-per-week": "$1,234", "job": "a", "city": "NA"}
    as_csv_missing = {**as_csv, "hours-per-week": "", "city": " n/a "}
    as_json = record(age=39, **{"hours-per-week": 1234, "city": None})
    as_json_missing = {**as_json, "hours-per-week": None}

    # When it is sent as it stands and as JSON numbers and nulls
    status, body = call(PREDICT, "adult", {"instances": [as_csv, as_csv_missing]})
    _, expected = call(PREDICT, "adult", {"instances": [as_json, as_json_missing]})

    # Then both are served alike: the numbers are numbers, the markers missing values
    assert status == 200, body
    assert {**body, "warnings": None} == {**expected, "warnings": None}
    assert body["warnings"] == [["hours-per-week=$1,234 is outside the training range [1.0, 99.0]"], []]
    assert expected["warnings"] == [["hours-per-week=1234 is outside the training range [1.0, 99.0]"], []]


def test_a_string_that_is_no_number_is_still_a_422(models, call) -> None:
    status, body = call(PREDICT, "adult", {"instances": [record(age="13.14"), record(age="1,5")]})

    assert status == 422
    assert [(e["row"], e["field"], e["message"]) for e in body["errors"]] == [
        (1, "age", "expected a number, got str '1,5'")]


def test_an_older_version_takes_missing_values_its_pipeline_serves(models, call) -> None:
    # Given a version registered before `nullable` was recorded (its schema says age and job are
    # required), When values are null or absent, Then what its graph imputes (numbers) and every
    # category (a missing one is a category of its own) are served, and the schema says so.
    status, body = call(PREDICT, "adult", record(**{"hours-per-week": None, "city": None}))
    assert status == 200 and body["warnings"] == [[]]
    status, body = call(PREDICT, "adult", {"instances": [record(age=None), record(job=None), {}]})
    assert status == 200 and len(body["predictions"]) == 3
    assert body["warnings"] == [[], [], []]  # not recorded whether training had them missing: no warning
    features = {f["name"]: f for f in call("GET /models/{name}", "adult")[1]["features"]}
    assert all(f["nullable"] is True and f["required"] is False for f in features.values())
    assert all(f["missing_in_training"] is None for f in features.values())


def test_an_older_seed_a_version_refuses_a_missing_category_saying_why(store, call) -> None:
    register(store, "complete", classifier_onnx(), "classification", recipe="seed-a")
    status, body = call(PREDICT, "complete", {"instances": [record(age=None), record(job=None)]})
    assert status == 422
    assert [(e["row"], e["field"]) for e in body["errors"]] == [(1, "job")]
    assert "recipe 'seed-a' trains only on complete rows" in body["errors"][0]["message"]
    features = {f["name"]: f for f in call("GET /models/{name}", "complete")[1]["features"]}
    assert features["age"]["nullable"] is True and features["job"]["nullable"] is False


def test_a_column_of_an_older_version_that_is_not_a_feature_is_still_unknown(models, call) -> None:
    # No ignored_columns recorded: even the target is an unknown field, as before.
    status, body = call(PREDICT, "adult", {**record(), "income": ">50K"})
    assert status == 422 and body["errors"] == [{"row": 0, "field": "income", "message": "unknown field"}]
    assert call("GET /models/{name}", "adult")[1]["ignored_columns"] is None


def test_an_unseen_category_is_served_flagged_and_counted(models, call, unseen_counts) -> None:
    status, body = call(PREDICT, "adult", {"instances": [record(job="astronaut"), record(), record(city="z")]})
    assert status == 200
    assert body["warnings"] == [["job='astronaut' was not seen in training"], [], ["city='z' was not seen in training"]]
    assert unseen_counts == [("adult", models["adult"], 2)]


def test_a_number_outside_the_training_range_is_served_with_a_warning(models, call) -> None:
    status, body = call(PREDICT, "adult", record(age=150))
    assert status == 200
    assert body["warnings"] == [["age=150 is outside the training range [17.0, 90.0]"]]


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (None, 400, "the request body is empty: send a JSON object"),
        ("   ", 400, "the request body is empty: send a JSON object"),
        ("{not json", 400, "the request body is not valid JSON: "),
        ('{"age": NaN}', 400, "the request body is not valid JSON: NaN is not a number JSON allows"),
        ('{"age": Infinity}', 400, "the request body is not valid JSON: Infinity is not a number JSON allows"),
        ('{"age": -Infinity}', 400, "the request body is not valid JSON: -Infinity is not a number JSON allows"),
        ("[1, 2]", 400, 'the body must be a JSON object: a record or {"instances": [...]}'),
        ('"text"', 400, 'the body must be a JSON object: a record or {"instances": [...]}'),
        ('{"instances": []}', 400, "'instances' is empty: send at least one record"),
        (json.dumps({"instances": [{}] * (MAX_INSTANCES + 1)}), 413,
         f"'instances' has {MAX_INSTANCES + 1} records; the limit is {MAX_INSTANCES} per request"),
        (" " * (MAX_BODY_BYTES + 1), 413, f"the request body is {MAX_BODY_BYTES + 1} bytes; the limit is {MAX_BODY_BYTES}"),
    ],
)
def test_malformed_bodies_are_4xx_with_a_message(models, call, raw, status, message) -> None:
    got_status, body = call(PREDICT, "adult", raw=raw)
    assert got_status == status
    assert body["message"].startswith(message)
    assert body["errors"] == []


@pytest.mark.parametrize(
    ("records", "errors"),
    [
        ([{**record(), "zip": 1}], [(0, "zip", "unknown field")]),
        ([record(age="old")], [(0, "age", "expected a number, got str 'old'")]),
        ([record(age=True)], [(0, "age", "expected a number, got bool True")]),
        ([record(age=[1])], [(0, "age", "expected a number, got list [1]")]),
        ([record(age=10**400)], [(0, "age", "must be a finite number")]),
        ([record(job={"a": 1})], [(0, "job", "expected a string, got dict")]),
        ([record(job=False)], [(0, "job", "expected a string, got bool")]),
        ([record(), "not a record"], [(1, None, "a record must be a JSON object, got str")]),
        ([record(), record(age="x", job=False)], [(1, "age", "expected a number, got str 'x'"),
                                                  (1, "job", "expected a string, got bool")]),
    ],
)
def test_field_problems_are_422_naming_each_row_and_field(models, call, records, errors) -> None:
    status, body = call(PREDICT, "adult", {"instances": records})
    assert status == 422
    assert [(e["row"], e["field"], e["message"]) for e in body["errors"]] == errors
    assert body["message"].startswith("invalid input: row ")
    for row, field, message in errors:
        assert f"row {row}" + (f" field {field!r}" if field else "") + f": {message}" in body["message"]


def test_a_number_too_large_for_json_floats_is_refused(models, call) -> None:
    status, body = call(PREDICT, "adult", raw=json.dumps(record()).replace('"age": 39', '"age": 1e999'))
    assert status == 422 and body["errors"][0]["message"] == "must be a finite number"


@pytest.mark.parametrize(
    ("name", "query", "status", "message"),
    [
        ("nobody", None, 404, "no model named 'nobody'"),
        ("Bad/Name", None, 404, "no model named 'Bad/Name'"),
        ("adult", {"version": "9"}, 404, "model 'adult' has no version 9"),
        ("adult", {"alias": "staging"}, 404, "model 'adult' has no 'staging' alias"),
        ("adult", {"version": "0"}, 400, "version must be a positive whole number, got '0': ASCII digits, 1 to 999999999"),
        ("adult", {"version": "one"}, 400, "version must be a positive whole number, got 'one': ASCII digits, 1 to 999999999"),
        ("adult", {"version": ""}, 400, "version must be a positive whole number, got '': ASCII digits, 1 to 999999999"),
        ("adult", {"alias": ""}, 400, "alias '' is not a valid alias name: a lowercase letter, then up to 31 lowercase letters, digits, - or _"),
        ("adult", {"alias": "Not An Alias"}, 400, "alias 'Not An Alias' is not a valid alias name: a lowercase letter, then up to 31 lowercase letters, digits, - or _"),
        ("adult", {"version": "1", "alias": "champion"}, 400, "give either version or alias, not both"),
    ],
)
def test_unknown_models_versions_and_aliases(models, call, name, query, status, message) -> None:
    for route in (PREDICT, "GET /models/{name}"):
        got_status, body = call(route, name, record(), query=query)
        assert (got_status, body["message"]) == (status, message), route


def test_describe_gives_version_metrics_and_the_feature_schema(models, call) -> None:
    status, body = call("GET /models/{name}", "adult")
    assert status == 200
    assert body["version"] == models["adult"] and body["task"] == "classification"
    assert body["metrics"] == {"accuracy": 0.9}
    assert [f["name"] for f in body["features"]] == [f["name"] for f in SCHEMA]
    assert body["features"][2]["categories"] == SCHEMA[2]["categories"]  # job: categories as trained


def test_list_models_shows_champions(models, store, call) -> None:
    register(store, "candidate-only", regressor_onnx(), "regression", promote=False)
    status, body = call("GET /models")
    assert status == 200
    assert body["models"] == [
        {"name": "adult", "champion": models["adult"]},
        {"name": "candidate-only", "champion": None},
        {"name": "houses", "champion": models["houses"]},
    ]


def test_openapi_document_is_valid_openapi_3(call) -> None:
    from openapi_spec_validator import validate

    status, body = call("GET /openapi.json")
    assert status == 200 and body["openapi"].startswith("3.")
    validate(body)
    assert set(body["paths"]) == {"/models", "/models/{name}", "/models/{name}/predict", "/openapi.json",
                                  "/models/{name}/feedback"}


def test_an_unknown_route_is_404(call) -> None:
    assert call("DELETE /models/{name}", "adult")[0] == 404


def test_alias_moves_are_served_after_the_ttl_and_warm_requests_read_nothing(
    models, store, server, clock, call, s3, monkeypatch
) -> None:
    # Given the champion served once (version 1)
    assert call(PREDICT, "adult", record())[1]["version"] == 1
    # When a new version is promoted
    v2 = register(store, "adult", classifier_onnx(seed=7), "classification")
    # Then within the TTL the cached version is still served, with no S3 read at all
    reads: list[str] = []
    original = s3.get_object
    monkeypatch.setattr(server.store, "_client", s3)
    monkeypatch.setattr(s3, "get_object", lambda **kw: reads.append(kw["Key"]) or original(**kw))
    clock.now += 4.9
    assert call(PREDICT, "adult", record())[1]["version"] == 1
    assert reads == []
    # And once the TTL has passed, the new champion is served
    clock.now += 0.2
    assert call(PREDICT, "adult", record())[1]["version"] == v2
    # and a rollback too
    ModelRegistry(store).set_alias("adult", registry.CHAMPION, 1, "rollback")
    clock.now += 5.1
    assert call(PREDICT, "adult", record())[1]["version"] == 1
    # an explicit version never waits for an alias
    assert call(PREDICT, "adult", record(), query={"version": str(v2)})[1]["version"] == v2


def test_a_tampered_artifact_is_not_served(models, store, s3, call) -> None:
    s3.put_object(Bucket=EVENT_BUCKET, Key="models/houses/version-1/model.onnx", Body=b"not the model")
    status, body = call(PREDICT, "houses", record())
    assert status == 404
    assert "does not match its recorded SHA-256" in body["message"]


def test_a_version_without_onnx_says_so(store, call) -> None:
    version = ModelRegistry(store).register_version("old", "run-old", {"model.joblib": b"pickle"},
        {"dataset": "old", "task": "regression", "target": "y", "schema": SCHEMA},
    )["version"]
    ModelRegistry(store).set_alias("old", registry.CHAMPION, version, "test")
    status, body = call(PREDICT, "old", record())
    assert status == 404 and "has no model.onnx" in body["message"]

