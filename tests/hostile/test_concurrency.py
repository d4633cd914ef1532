"""Hostile concurrency: Given a model with versions 1-3 (v2 champion), When many promotions and
rollbacks - good and refused - race each other through the registry API, and predictions run
meanwhile, Then every answer is a 2xx or a readable 4xx, the alias history is one unbroken chain
holding exactly the accepted changes, and the refused ones left no trace. And the offline HTTP
API refuses oversized bodies unread while it serves others."""

from __future__ import annotations

import http.client
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any

import pytest

from stepml import registry
from stepml.local.api import MAX_PAYLOAD_BYTES, HttpApiServer, to_http_response
from stepml.local.template import HttpRoute
from stepml.registry import ModelRegistry
from stepml.serving import ModelServer
from stepml.storage import S3Store
from tests.functional.inference_models import classifier_onnx, record
from tests.functional.test_inference_api import register
from tests.hostile.conftest import champion
from tests.hostile.test_registry_calls import PROMOTE, ROLLBACK

WORKERS = 8


@pytest.fixture(autouse=True, scope="module")
def atomic_conditional_writes() -> Any:
    """moto checks S3 conditions and writes with nothing held between: the offline stack makes
    conditional writes atomic, as on AWS (stepml.local.s3_conditions), and so do these cases."""
    from stepml.local import s3_conditions

    installed_here = s3_conditions._original is None
    s3_conditions.install()
    yield
    if installed_here:
        s3_conditions.uninstall()


def assert_one_chain(store: S3Store, accepted: int) -> list[dict[str, Any]]:
    """The history holds the 2 setup changes plus exactly the accepted ones, each starting where
    the one before ended, and the alias names where the last one ended."""
    models = ModelRegistry(store)
    record = models.alias_record("adult", registry.CHAMPION)
    history = list(reversed(models.history("adult", registry.CHAMPION)["entries"]))  # archived ones too
    assert len(history) == 2 + accepted
    for before, after in pairwise(history):
        assert after["from"] == before["to"]
    assert record["version"] == history[-1]["to"] == champion(store)
    return history


def test_concurrent_promotions_are_all_kept_in_one_chain(adult, registry_call) -> None:
    versions = [1 + i % 3 for i in range(16)]
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        answers = list(pool.map(lambda v: registry_call(
            PROMOTE, name="adult", body={"version": v, "reason": f"to {v}", "force": True}), versions))
    assert [status for status, _, _ in answers] == [200] * len(versions)
    history = assert_one_chain(adult, len(versions))
    assert sorted(entry["to"] for entry in history[2:]) == sorted(versions)


def test_racing_promotions_by_hand_are_each_gated_against_the_champion_they_replace(adult, registry_call) -> None:
    # Given v2 (0.81) champion, When unforced promotions of v1 (0.80), v2 and v3 (0.82) race
    versions = [1 + i % 3 for i in range(12)]
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        statuses = list(pool.map(lambda v: registry_call(PROMOTE, name="adult", body={"version": v})[0], versions))
    # Then v1 is always refused, and no accepted change ever replaced a better champion
    assert {status for status, v in zip(statuses, versions, strict=True) if v == 1} == {409}
    history = assert_one_chain(adult, statuses.count(200))
    for entry in history[2:]:
        assert entry["gate"]["passed"] and entry["forced"] is False and entry["to"] >= entry["from"]
    assert champion(adult) == 3


def test_concurrent_promotions_and_rollbacks_never_break_the_chain(adult, registry_call) -> None:
    def act(index: int) -> int:
        if index % 2:
            return registry_call(ROLLBACK, name="adult", body={"reason": f"undo {index}"})[0]
        return registry_call(PROMOTE, name="adult", body={"version": 1 + index % 3})[0]

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        statuses = list(pool.map(act, range(20)))
    assert set(statuses) <= {200, 409}  # 409: a rollback found nothing earlier to go back to
    history = assert_one_chain(adult, statuses.count(200))
    # Every rollback landed where the rule said at that moment: on a version other than the one it left
    assert all(entry["from"] != entry["to"] for entry in history if entry["action"] == "rollback")


def test_refused_promotions_racing_good_ones_leave_no_trace(adult, registry_call) -> None:
    # (forced: the good ones move the alias back and forth, past the quality gate)
    bodies = [{"version": 3, "reason": "x" * 5000} if i % 2 else {"version": 1 + i % 3, "reason": "ok", "force": True}
              for i in range(16)]
    bodies += [{"version": 99}, {"version": "1"}, {"version": 1, "extra": True}]
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        statuses = list(pool.map(lambda body: registry_call(PROMOTE, name="adult", body=body)[0], bodies))
    assert statuses == [422 if i % 2 else 200 for i in range(16)] + [404, 422, 422]
    history = assert_one_chain(adult, 8)
    assert all(entry["reason"] in ("setup", "ok") for entry in history)


def test_predictions_during_promotions_always_answer_from_a_registered_version(api_store, registry_call) -> None:
    first = register(api_store, "adult", classifier_onnx(), "classification")
    second = register(api_store, "adult", classifier_onnx(1), "classification")
    server = ModelServer(api_store, alias_ttl=0.0)  # every request reads the alias: the worst case

    from stepml.api import handle

    def predict(_: int) -> tuple[int, Any]:
        event = {"version": "2.0", "routeKey": "POST /models/{name}/predict", "pathParameters": {"name": "adult"},
                 "body": json.dumps(record())}
        response = handle(event, server)
        return response["statusCode"], json.loads(response["body"]).get("version")

    def promote(index: int) -> int:
        body = {"version": (first, second)[index % 2], "force": True, "reason": "flip"}
        return registry_call(PROMOTE, name="adult", body=body)[0]

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        predictions = [pool.submit(predict, i) for i in range(12)]
        promotions = [pool.submit(promote, i) for i in range(4)]
        answers = [future.result() for future in predictions]
        assert [future.result() for future in promotions] == [200] * 4
    assert {status for status, _ in answers} == {200}
    assert {version for _, version in answers} <= {first, second}


# -- the offline HTTP API: body limits at the socket --------------------------------------------


@pytest.fixture
def echo_api() -> Any:
    """A bare local API whose one route answers with the size of the body it was given."""
    server = HttpApiServer("127.0.0.1", 0)
    server.configure(
        [HttpRoute(function="Echo", method="POST", path="/echo", event="Echo")],
        lambda _function, event: (json.dumps({"bytes": len(event.get("body") or "")}).encode(), False),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def raw_request(server: HttpApiServer, head: str, body: bytes = b"") -> tuple[int, dict[str, Any], str]:
    """Send a request as written; the status, the JSON body and the Connection header."""
    with socket.create_connection((server.host, server.port), timeout=10) as connection:
        connection.sendall(head.encode() + b"\r\n\r\n" + body)
        response = http.client.HTTPResponse(connection)
        response.begin()
        return response.status, json.loads(response.read()), response.getheader("connection") or ""


@pytest.mark.parametrize(
    ("length", "status", "message"),
    [
        pytest.param(str(MAX_PAYLOAD_BYTES + 1), 413, "Request Entity Too Large", id="10 MB + 1"),
        pytest.param(str(10**12), 413, "Request Entity Too Large", id="a terabyte"),
        pytest.param("-5", 400, "Bad Request", id="negative"),
        pytest.param("ten", 400, "Bad Request", id="not a number"),
        pytest.param("٣", 400, "Bad Request", id="arabic-indic digit"),
    ],
)
def test_the_local_api_refuses_a_body_it_should_not_read(echo_api, length, status, message) -> None:
    # The body is never sent: a server that tried to read it would hang until the timeout
    got, body, connection = raw_request(echo_api, f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {length}")
    assert (got, body) == (status, {"message": message})
    assert connection == "close"


def test_the_local_api_serves_others_while_refusing_oversized_bodies(echo_api) -> None:
    def one(index: int) -> int:
        if index % 2:
            return raw_request(echo_api, f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_PAYLOAD_BYTES + 1}")[0]
        return raw_request(echo_api, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2", b"{}")[0]

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        statuses = list(pool.map(one, range(32)))
    assert statuses == [200, 413] * 16


def test_a_body_just_under_the_limit_is_read_whole(echo_api) -> None:
    body = b"x" * (1024 * 1024)
    got, answer, _ = raw_request(echo_api, f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}", body)
    assert (got, answer) == (200, {"bytes": len(body)})


def test_an_event_lambda_refuses_as_too_large_is_a_413_not_a_500() -> None:
    payload = json.dumps({"errorMessage": "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
                          "errorType": "RequestTooLargeException", "requestId": "r", "stackTrace": []}).encode()
    response = to_http_response(payload, errored=True)
    assert (response.status, json.loads(response.body)) == (413, {"message": "Request Entity Too Large"})
    other = to_http_response(json.dumps({"errorType": "Runtime.ExitError"}).encode(), errored=True)
    assert other.status == 500


def test_a_keep_alive_connection_survives_a_404_with_a_body(echo_api) -> None:
    # Given one connection, When a request to no route carries a body, Then the body is consumed
    # and the next request on the same connection is answered
    connection = http.client.HTTPConnection(echo_api.host, echo_api.port, timeout=10)
    try:
        for path, status in (("/nowhere", 404), ("/echo", 200), ("/nowhere", 404), ("/echo", 200)):
            connection.request("POST", path, body=b'{"x": 1}', headers={"content-type": "application/json"})
            response = connection.getresponse()
            assert (response.status, response.getheader("connection")) == (status, None)
            response.read()
    finally:
        connection.close()
