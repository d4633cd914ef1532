"""The local HTTP API's routing, event and response rules (API Gateway HTTP API, payload 2.0)."""

from __future__ import annotations

import base64
import json

from stepml.local.api import Router, build_event, to_http_response
from stepml.local.template import HttpRoute


def route(method: str, path: str, function: str = "Fn") -> HttpRoute:
    return HttpRoute(function=function, method=method, path=path, event="E")


ROUTER = Router(
    [
        route("ANY", "$default", "Default"),
        route("ANY", "/files/{proxy+}", "Files"),
        route("GET", "/models/{name}", "Describe"),
        route("GET", "/models/latest", "Latest"),
        route("POST", "/models/{name}/predict", "Predict"),
        route("ANY", "/models/{name}/predict", "AnyPredict"),
    ]
)


def matched(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    found = ROUTER.match(method, path)
    return (found[0].function, found[1]) if found else None


def test_most_specific_route_wins() -> None:
    assert matched("GET", "/models/latest") == ("Latest", {})
    assert matched("GET", "/models/adult") == ("Describe", {"name": "adult"})
    assert matched("POST", "/models/adult/predict") == ("Predict", {"name": "adult"})
    assert matched("PUT", "/models/adult/predict") == ("AnyPredict", {"name": "adult"})
    assert matched("GET", "/files/a/b/c.txt") == ("Files", {"proxy": "a/b/c.txt"})
    assert matched("GET", "/anything/else") == ("Default", {})


def test_no_route_means_no_match() -> None:
    router = Router([route("POST", "/models/{name}/predict")])
    assert router.match("GET", "/models/adult/predict") is None
    assert router.match("POST", "/models/adult") is None
    assert router.match("POST", "/models/adult/predict/extra") is None
    assert router.match("POST", "/models/a%20b/predict") == (router.routes[0], {"name": "a b"})


def test_event_follows_payload_format_2() -> None:
    event = build_event(
        route=route("POST", "/models/{name}/predict"),
        path_parameters={"name": "adult"},
        method="post",
        raw_path="/models/adult/predict",
        raw_query="a=1&a=2&b=",
        headers=[
            ("Content-Type", "application/json"),
            ("X-Many", "1"),
            ("X-Many", "2"),
            ("Cookie", "s=1; t=2"),
        ],
        body=b'{"rows": []}',
        source_ip="127.0.0.1",
    )

    assert event["version"] == "2.0" and event["routeKey"] == "POST /models/{name}/predict"
    assert event["requestContext"]["routeKey"] == event["routeKey"]
    assert event["requestContext"]["http"] == {
        "method": "POST",
        "path": "/models/adult/predict",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "",
    }
    assert event["headers"] == {"content-type": "application/json", "x-many": "1,2"}
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["pathParameters"] == {"name": "adult"}
    assert event["body"] == '{"rows": []}' and event["isBase64Encoded"] is False


def test_event_without_body_query_or_params_omits_them() -> None:
    event = build_event(
        route=route("GET", "/health"),
        path_parameters={},
        method="GET",
        raw_path="/health",
        raw_query="",
        headers=[],
        body=b"",
        source_ip="127.0.0.1",
    )

    assert not {"body", "queryStringParameters", "pathParameters", "cookies"} & set(event)


def test_binary_bodies_are_base64_encoded() -> None:
    event = build_event(
        route=route("POST", "/upload"),
        path_parameters={},
        method="POST",
        raw_path="/upload",
        raw_query="",
        headers=[("content-type", "application/octet-stream")],
        body=b"\x00\xff",
        source_ip="::1",
    )

    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\x00\xff"


def test_response_with_status_code_is_used_as_given() -> None:
    payload = {"statusCode": 422, "headers": {"X-A": "1"}, "body": '{"e": 1}', "cookies": ["c=1"]}

    response = to_http_response(json.dumps(payload).encode(), errored=False)

    assert response.status == 422 and response.body == b'{"e": 1}'
    assert ("x-a", "1") in response.headers and ("set-cookie", "c=1") in response.headers


def test_bare_json_is_a_200_with_that_json() -> None:
    response = to_http_response(b'{"prediction": 1}', errored=False)

    assert (response.status, json.loads(response.body)) == (200, {"prediction": 1})
    assert ("content-type", "application/json") in response.headers


def test_function_errors_are_a_plain_500() -> None:
    error = {"errorMessage": "secret", "errorType": "ValueError", "stackTrace": ["..."]}

    response = to_http_response(json.dumps(error).encode(), errored=True)

    assert (response.status, json.loads(response.body)) == (
        500,
        {"message": "Internal Server Error"},
    )


def test_base64_response_bodies_are_decoded() -> None:
    payload = {
        "statusCode": 200,
        "isBase64Encoded": True,
        "body": base64.b64encode(b"\x89PNG").decode(),
    }

    assert to_http_response(json.dumps(payload).encode(), errored=False).body == b"\x89PNG"
