"""The registry over HTTP (what the UI uses): Given registered versions, When the UI promotes or
rolls back, Then the champion and its history change, and bad requests get a readable 4xx."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stepml import registry
from stepml.registry import ModelRegistry
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
        version = ModelRegistry(store).register_version("adult", f"run-{accuracy}", {"model.joblib": b"m"}, meta)["version"]
        ModelRegistry(store).promote_if_better("adult", version, {}, f"run-{accuracy}")
    return store


def call(invoke, event) -> tuple[int, Any]:
    response = invoke("registry", event)
    return response["statusCode"], json.loads(response["body"])


PROMOTE = "POST /models/{name}/promote"


def as_operator(event: dict[str, Any], arn: str = "arn:aws:iam::123456789012:user/ops-ana") -> dict[str, Any]:
    """The event as API Gateway sends it for a SigV4-signed (IAM-authorized) caller."""
    context = event.setdefault("requestContext", {})
    context["authorizer"] = {"iam": {"accountId": "123456789012", "userArn": arn}}
    return event


def test_a_worse_version_is_refused_by_the_gate_and_nothing_changes(versions, invoke) -> None:
    # Given v2 (accuracy 0.87) is champion, When v1 (0.85) is promoted by hand without force
    before = ModelRegistry(versions).alias_record("adult", registry.CHAMPION)
    status, body = call(invoke, request(PROMOTE, {"name": "adult"}, {"version": 1, "reason": "v2 drifts"}))
    # Then the gate's reason is the answer, with its decision, and the alias and history are untouched
    assert status == 409 and "the quality gate refuses version 1" in body["message"]
    assert "0.85 is worse than champion v2's 0.87" in body["message"] and '"force": true' in body["message"]
    assert body["errors"][0]["field"] == "version"
    assert (body["gate"]["passed"], body["gate"]["value"], body["gate"]["champion_value"]) == (False, 0.85, 0.87)
    assert ModelRegistry(versions).alias_record("adult", registry.CHAMPION) == before


def test_a_forced_promotion_records_who_and_why(versions, invoke) -> None:
    # When v1 is promoted with force and a reason by an IAM-signed operator
    event = as_operator(request(PROMOTE, {"name": "adult"}, {"version": 1, "force": True, "reason": "v2 drifts in prod"}))
    status, body = call(invoke, event)
    # Then it is champion, the answer carries the refused gate, and the history says forced, who, why
    assert status == 200 and body["version"] == 1 and body["forced"] is True and body["gate"]["passed"] is False
    assert ModelRegistry(versions).alias_version("adult", registry.CHAMPION) == 1
    status, history = call(invoke, request("GET /models/{name}/history", {"name": "adult"}))
    entry = history["history"][0]  # newest first
    assert (entry["forced"], entry["actor"], entry["reason"]) == (True, "arn:aws:iam::123456789012:user/ops-ana", "v2 drifts in prod")
    assert "worse than champion v2" in entry["gate"]["reason"] and "unless it is forced" in history["promotion_rule"]


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_force_without_a_reason_is_refused_and_nothing_changes(versions, invoke, reason) -> None:
    before = ModelRegistry(versions).alias_record("adult", registry.CHAMPION)
    body = {"version": 1, "force": True} | ({} if reason is None else {"reason": reason})
    status, answer = call(invoke, request(PROMOTE, {"name": "adult"}, body))
    assert status == 422 and answer["message"].startswith("'reason' is required when forcing")
    assert answer["errors"][0]["field"] == "reason"
    assert ModelRegistry(versions).alias_record("adult", registry.CHAMPION) == before


def test_force_must_be_a_boolean(versions, invoke) -> None:
    status, answer = call(invoke, request(PROMOTE, {"name": "adult"}, {"version": 1, "force": "yes", "reason": "x"}))
    assert status == 422 and "'force' must be true or false" in answer["message"]
    assert ModelRegistry(versions).alias_version("adult", registry.CHAMPION) == 2


def test_a_better_version_is_promoted_without_force(versions, invoke) -> None:
    # Given v1 champion again (forced), When v2 - better - is promoted by hand without force
    call(invoke, request(PROMOTE, {"name": "adult"}, {"version": 1, "force": True, "reason": "setup"}))
    status, body = call(invoke, request(PROMOTE, {"name": "adult"}, {"version": 2}))
    # Then the gate passes and the entry records it, not forced
    assert status == 200 and body["version"] == 2 and body["forced"] is False
    assert body["gate"]["passed"] is True and "0.87 matches or beats champion v1's 0.85" in body["gate"]["reason"]
    entry = ModelRegistry(versions).alias_record("adult", registry.CHAMPION)["history"][-1]
    assert (entry["forced"], entry["gate"]["passed"], entry["reason"]) == (False, True, "promoted from the API")


def test_promote_and_rollback_over_http(versions, invoke) -> None:
    status, body = call(invoke, request(PROMOTE, {"name": "adult"}, {"version": 1, "reason": "v2 drifts", "force": True}))
    assert status == 200 and body["version"] == 1 and body["actor"].startswith("api@")
    status, body = call(invoke, request("POST /models/{name}/rollback", {"name": "adult"}, {"reason": "undo"}))
    assert status == 200 and body["version"] == 2
    status, body = call(invoke, request("GET /models/{name}/history", {"name": "adult"}))
    assert [h["action"] for h in body["history"]] == ["rollback", "promote", "promote", "promote"]
    status, body = call(invoke, request("GET /models/{name}/versions", {"name": "adult"}))
    assert [(v["version"], v["aliases"]) for v in body["versions"]] == [(1, []), (2, ["champion"])]
    status, body = call(invoke, request("GET /models/{name}/diff", {"name": "adult"}, query={"a": "1", "b": "2"}))
    assert body["metrics"][0]["change"] == pytest.approx(0.02)


def test_history_is_paged_newest_first_across_archived_entries(versions, invoke) -> None:
    # Given 2 pipeline promotions and 48 by hand (more than the alias object keeps)
    models = ModelRegistry(versions)
    for n in range(48):
        models.set_alias("adult", registry.CHAMPION, 1 + n % 2, f"flip {n}", action="promote")
    # When the UI reads the history a page at a time
    pages, before = [], None
    while True:
        query = {"limit": "20"} if before is None else {"limit": "20", "before": str(before)}
        status, body = call(invoke, request("GET /models/{name}/history", {"name": "adult"}, query=query))
        assert status == 200 and body["total"] == 50
        pages.append([entry["seq"] for entry in body["history"]])
        before = body["next_before"]
        if before is None:
            break
    # Then it gets every change once, newest first, 20 to a page
    assert [len(page) for page in pages] == [20, 20, 10]
    assert [seq for page in pages for seq in page] == list(range(50, 0, -1))
    assert body["history"][-1]["action"] == "promote" and body["history"][-1]["from"] is None
    # And a page size above the limit, or a page that is not a number, is refused
    for query, message in (({"limit": "1000"}, "limit must be at most 100"), ({"before": "x"}, "before must be")):
        status, body = call(invoke, request("GET /models/{name}/history", {"name": "adult"}, query=query))
        assert status == 400 and message in body["message"]


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


def test_rollback_to_a_worse_champion_is_not_gated(versions, invoke) -> None:
    # Given v2 (0.87) replaced v1 (0.85), When an operator rolls back (the escape hatch)
    status, body = call(invoke, request("POST /models/{name}/rollback", {"name": "adult"}, {"reason": "v2 breaks in prod"}))
    # Then v1 serves again, though the gate would refuse promoting it, and the entry has no gate
    assert status == 200 and body["version"] == 1
    entry = ModelRegistry(versions).alias_record("adult", registry.CHAMPION)["history"][-1]
    assert entry["action"] == "rollback" and "gate" not in entry and "forced" not in entry
