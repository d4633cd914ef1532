"""The registry over HTTP (what the UI uses): Given registered versions, When the UI promotes or
rolls back, Then the champion and its history change, and bad requests get a readable 4xx."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stepml import registry
from tests.functional.conftest import EVENT_BUCKET, load_event


def request(route: str, path: dict[str, str], body: Any = None, query: dict[str, str] | None = None) -> dict[str, Any]:
    event = load_event("inference")
    event.update({"routeKey": route, "pathParameters": path, "queryStringParameters": query,
                  "body": None if body is None else (body if isinstance(body, str) else json.dumps(body))})
    return event


@pytest.fixture
def versions(s3):
    from stepml.settings import Settings
    from stepml.storage import S3Store

    store = S3Store(Settings(bucket=EVENT_BUCKET))
    for accuracy in (0.85, 0.87):
        meta = {"evaluation": {"primary_metric": "accuracy", "higher_is_better": True, "metrics": {"accuracy": accuracy},
                               "baseline": {"accuracy": 0.75}}, "schema": [], "recipe": "seed-a", "train_rows": 10, "test_rows": 5}
        version = registry.register_version(store, "adult", "run", {"model.joblib": b"m"}, meta)["version"]
        registry.promote_if_better(store, "adult", version, {}, "run")
    return store


def call(invoke, event) -> tuple[int, Any]:
    response = invoke("registry", event)
    return response["statusCode"], json.loads(response["body"])


def test_promote_and_rollback_over_http(versions, invoke) -> None:
    status, body = call(invoke, request("POST /models/{name}/promote", {"name": "adult"}, {"version": 1, "reason": "v2 drifts"}))
    assert status == 200 and body["version"] == 1 and body["actor"].startswith("api@")
    status, body = call(invoke, request("POST /models/{name}/rollback", {"name": "adult"}, {"reason": "undo"}))
    assert status == 200 and body["version"] == 2
    status, body = call(invoke, request("GET /models/{name}/history", {"name": "adult"}))
    assert [h["action"] for h in body["history"]] == ["promote", "promote", "promote", "rollback"]
    status, body = call(invoke, request("GET /models/{name}/versions", {"name": "adult"}))
    assert [(v["version"], v["aliases"]) for v in body["versions"]] == [(1, []), (2, ["champion"])]
    status, body = call(invoke, request("GET /models/{name}/diff", {"name": "adult"}, query={"a": "1", "b": "2"}))
    assert body["metrics"][0]["change"] == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("route", "path", "body", "status", "message"),
    [
        ("POST /models/{name}/promote", {"name": "adult"}, {"version": "two"}, 422, "'version' must be"),
        ("POST /models/{name}/promote", {"name": "adult"}, "{oops", 400, "not valid JSON"),
        ("POST /models/{name}/promote", {"name": "adult"}, {"version": 9}, 404, "no version 9"),
        ("GET /models/{name}/versions/{version}", {"name": "adult", "version": "x"}, None, 400, "positive whole number"),
        ("GET /models/{name}/versions", {"name": "nope"}, None, 404, "no registered versions"),
    ],
)
def test_bad_registry_requests(versions, invoke, route, path, body, status, message) -> None:
    got, payload = call(invoke, request(route, path, body))
    assert got == status and message in payload["message"]


def test_rollback_without_an_earlier_champion_is_a_conflict(s3, invoke) -> None:
    status, body = call(invoke, request("POST /models/{name}/rollback", {"name": "adult"}))
    assert status in (404, 409) and "adult" in body["message"]
