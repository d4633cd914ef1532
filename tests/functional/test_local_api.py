"""The local HTTP API: its routing, event and response rules (API Gateway HTTP API, payload 2.0),
and how it holds up as a server - bursts of concurrent clients, keep-alive connections."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import pytest

from stepml import registry
from stepml.client import ApiClient, signed_headers
from stepml.local import LocalStack, iam
from stepml.local.api import HttpApiServer, Router, build_event, to_http_response
from stepml.local.api_auth import IamAuthorizer
from stepml.local.endpoint import ACCOUNT_ID
from stepml.local.template import HttpRoute
from stepml.registry import ModelRegistry
from stepml.stack import Stack
from tests.conftest import ROOT
from tests.functional.inference_models import SCHEMA, classifier_onnx, record


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


# -- as a server: the project's stack with a registered model ------------------------------------


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    """The project's template offline, with a small classifier as the champion of "adult" (and
    the data bucket's access logging on: the API must serve the same with it)."""
    with LocalStack(
        ROOT, port=0, api_port=0, stack_name="stepml-local-api", parameters={"AccessLogging": "true", "InferenceReservedConcurrency": "100", "TrainingConcurrency": "5"}
    ) as running:
        # The store a user's CLI gets for this stack, as its administrator.
        assert running.admin_credentials is not None
        store = Stack(
            stack_name=running.stack_name,
            endpoint_url=running.endpoint_url,
            credentials=running.admin_credentials.client_kwargs(),
        ).store
        meta = {
            "dataset": "adult",
            "task": "classification",
            "target": "income",
            "recipe": "auto",
            "schema": SCHEMA,
            "evaluation": {"primary_metric": "accuracy", "metrics": {"accuracy": 0.9}},
            "lineage": {"bucket": "data", "key": "raw/adult/adult.csv", "run_id": "run-1"},
        }
        version = ModelRegistry(store).register_version("adult", "run-1", {"model.onnx": classifier_onnx()}, meta
        )["version"]
        ModelRegistry(store).set_alias("adult", registry.CHAMPION, version, "test")
        yield running


def connect(url: str) -> http.client.HTTPConnection:
    address = urlsplit(url)
    return http.client.HTTPConnection(address.hostname or "", address.port, timeout=60)


def request(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: Any = None,
    credentials: Mapping[str, str] | None = None,
) -> tuple[int, Any]:
    """One request, signed with ``credentials`` (SigV4, execute-api) unless they are None."""
    payload = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if credentials is not None:
        url = f"http://{connection.host}:{connection.port}{path}"
        headers = signed_headers(method, url, payload, credentials, "us-east-1", headers)
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def admin(stack: LocalStack) -> Mapping[str, str]:
    assert stack.admin_credentials is not None
    return stack.admin_credentials.client_kwargs()


def test_64_concurrent_clients_each_get_their_prediction(stack: LocalStack) -> None:
    # Given 64 clients, each on its own connection, released at the same moment
    clients, requests_each = 64, 3
    barrier = threading.Barrier(clients)
    answers: list[tuple[int, Any]] = []
    failures: list[Exception] = []
    lock = threading.Lock()

    def client(age: int) -> None:
        barrier.wait()
        connection = connect(stack.api_url)
        try:
            for _ in range(requests_each):
                answer = request(connection, "POST", "/models/adult/predict", record(age=age), keys)
                with lock:
                    answers.append(answer)
        except (OSError, http.client.HTTPException, ValueError) as exc:  # a reset, a hang-up
            with lock:
                failures.append(exc)
        finally:
            connection.close()

    keys = admin(stack)
    threads = [threading.Thread(target=client, args=(20 + i,)) for i in range(clients)]
    # When they all predict
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # Then every request got its prediction: no reset, no refused connection, no 5xx
    assert failures == []
    assert len(answers) == clients * requests_each
    assert {status for status, _ in answers} == {200}
    assert all(body["predictions"][0] in {"<=50K", ">50K"} for _, body in answers)


def test_a_keep_alive_connection_serves_many_requests_in_turn(stack: LocalStack) -> None:
    # Given one connection
    keys = admin(stack)
    connection = connect(stack.api_url)
    connection.connect()
    first_socket = connection.sock
    try:
        # When it sends many requests, answered successes and refusals alike
        statuses = []
        for i in range(60):
            if i % 3 == 0:
                statuses.append(request(connection, "POST", "/models/adult/predict", record(), keys)[0])
            elif i % 3 == 1:
                statuses.append(
                    request(connection, "POST", "/models/adult/predict", {"age": "x"}, keys)[0]
                )
            else:
                statuses.append(request(connection, "GET", "/models/nothing-here", None, keys)[0])
            # Then the server never closed it: every answer came on the same socket
            assert connection.sock is first_socket
    finally:
        connection.close()
    assert statuses[:3] == [200, 422, 404] and statuses == statuses[:3] * 20


# -- IAM authorization (the template's AWS_IAM default authorizer) ---------------------------------


@pytest.fixture(scope="module")
def users(stack: LocalStack) -> dict[str, Mapping[str, str]]:
    """A consumer and an operator: IAM users holding the stack's managed policies."""
    outputs = stack.outputs
    consumer = iam.create_user(ACCOUNT_ID, stack.region, "api-consumer", outputs["ConsumerPolicyArn"])
    operator = iam.create_user(ACCOUNT_ID, stack.region, "api-operator", outputs["OperatorPolicyArn"])
    nobody = iam.create_user(ACCOUNT_ID, stack.region, "api-nobody")
    return {"consumer": consumer.client_kwargs(), "operator": operator.client_kwargs(),
            "nobody": nobody.client_kwargs()}


PROMOTE = "/models/adult/promote"


def test_unsigned_and_badly_signed_requests_are_forbidden(stack: LocalStack, users) -> None:
    connection = connect(stack.api_url)
    try:
        # Unsigned
        assert request(connection, "POST", "/models/adult/predict", record()) == (403, {"message": "Forbidden"})
        assert request(connection, "GET", "/openapi.json") == (403, {"message": "Forbidden"})
        # Signed with a wrong secret, or an unknown key
        wrong = {**users["operator"], "aws_secret_access_key": "not-the-secret"}
        assert request(connection, "GET", "/models", None, wrong) == (403, {"message": "Forbidden"})
        unknown = {"aws_access_key_id": "AKIAUNKNOWNUNKNOWN00", "aws_secret_access_key": "x"}
        assert request(connection, "GET", "/models", None, unknown) == (403, {"message": "Forbidden"})
        # Signed for one body, sent with another
        url = f"http://{connection.host}:{connection.port}{PROMOTE}"
        headers = signed_headers("POST", url, b'{"version": 1}', users["operator"], "us-east-1")
        connection.request("POST", PROMOTE, body=b'{"version": 2}', headers=headers)
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())) == (403, {"message": "Forbidden"})
    finally:
        connection.close()


def test_a_signature_older_than_15_minutes_is_forbidden(stack: LocalStack, users, monkeypatch) -> None:
    import datetime as dt

    import botocore.auth

    stale = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=16)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: stale)
    connection = connect(stack.api_url)
    try:
        status, body = request(connection, "GET", "/models", None, users["operator"])
        assert status == 403 and body["message"].startswith("Signature expired: ")
    finally:
        connection.close()


def test_a_consumer_predicts_but_may_not_promote_or_read_lineage(stack: LocalStack, users) -> None:
    connection = connect(stack.api_url)
    try:
        status, body = request(connection, "POST", "/models/adult/predict", record(), users["consumer"])
        assert status == 200 and body["predictions"][0] in {"<=50K", ">50K"}
        assert request(connection, "GET", "/models/adult/versions", None, users["consumer"])[0] == 200
        user = "arn:aws:iam::123456789012:user/api-consumer"
        for method, path, body in (("POST", PROMOTE, {"version": 1}), ("POST", "/models/adult/rollback", {}),
                                   ("GET", "/lineage/adult/1", None)):
            resource = f"arn:aws:execute-api:us-east-1:123456789012:local-http-api/$default/{method}{path}"
            assert request(connection, method, path, body, users["consumer"]) == (403, {
                "message": f"User: {user} is not authorized to perform: execute-api:Invoke on resource: {resource}"})
        # An identity without either policy may not even predict.
        status, body = request(connection, "POST", "/models/adult/predict", record(), users["nobody"])
        assert status == 403 and body["message"].startswith("User: arn:aws:iam::123456789012:user/api-nobody is not")
    finally:
        connection.close()


def test_an_operator_promotes_and_is_recorded_as_the_actor(stack: LocalStack, users) -> None:
    connection = connect(stack.api_url)
    try:
        status, body = request(connection, "POST", PROMOTE, {"version": 1, "reason": "re-pin", "force": True},
                               users["operator"])
        assert status == 200 and body["version"] == 1
        assert body["actor"] == "arn:aws:iam::123456789012:user/api-operator"
        status, body = request(connection, "GET", "/lineage/adult/1", None, users["operator"])
        assert status == 200 and body["version"] == 1
    finally:
        connection.close()


def test_the_client_says_which_policy_a_refused_identity_lacks(stack: LocalStack, users) -> None:
    outputs = stack.outputs
    arns = {"operator_policy_arn": outputs["OperatorPolicyArn"], "consumer_policy_arn": outputs["ConsumerPolicyArn"]}
    consumer = ApiClient(stack.api_url, stack.region, users["consumer"], **arns)
    answer = consumer.post("/models/adult/promote", {"version": 1})
    assert answer.status == 403
    assert f"your identity lacks the stepml operator policy {outputs['OperatorPolicyArn']}" in answer.message
    assert answer.message.startswith("User: arn:aws:iam::123456789012:user/api-consumer is not authorized")
    nobody = ApiClient(stack.api_url, stack.region, users["nobody"], **arns)
    answer = nobody.post("/models/adult/predict", record())
    assert answer.status == 403
    assert f"your identity lacks the stepml consumer policy {outputs['ConsumerPolicyArn']}" in answer.message
    # And a signed request with the right policy goes through the same client
    assert consumer.post("/models/adult/predict", record()).status == 200


def test_an_allowed_event_carries_the_callers_iam_identity(stack: LocalStack, users) -> None:
    # Given an IAM-guarded route whose function echoes its event, on the stack's IAM
    server = HttpApiServer("127.0.0.1", 0)
    server.configure([HttpRoute("Fn", "GET", "/whoami", "WhoAmI", "AWS_IAM")],
                     lambda _function, event: (json.dumps(event["requestContext"]).encode(), False),
                     IamAuthorizer(ACCOUNT_ID, stack.region, "local-http-api"))
    server.start()
    connection = connect(server.url)
    try:
        # When the operator calls it
        status, context = request(connection, "GET", "/whoami", None, users["operator"])
    finally:
        connection.close()
        server.stop()
    # Then the function sees who called, in API Gateway's fields
    identity = context["authorizer"]["iam"]
    assert status == 200 and context["apiId"] == "local-http-api"
    assert set(identity) == {"accessKey", "accountId", "callerId", "cognitoIdentity", "principalOrgId", "userArn", "userId"}
    assert identity["userArn"] == "arn:aws:iam::123456789012:user/api-operator"
    assert identity["accessKey"] == users["operator"]["aws_access_key_id"] and identity["accountId"] == ACCOUNT_ID
    assert identity["userId"] == identity["callerId"] != ""  # the IAM user's unique id


def test_the_ui_shows_lineage_to_operators_only(stack: LocalStack, users, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "ui"))
    from stepml_ui.client import Console

    def console(keys: Mapping[str, str]) -> Console:
        return Console(Stack(stack_name=stack.stack_name, endpoint_url=stack.endpoint_url, credentials=keys))

    # The consumer's stack client cannot describe the stack (no CloudFormation rights): aim it directly.
    operator = console(admin(stack)).versions("adult", with_lineage=True)
    assert operator.ok and all("lineage" in v for v in operator.body["versions"])
    consumer = Console(Stack(stack_name=stack.stack_name, endpoint_url=stack.endpoint_url, credentials=users["consumer"]),
                       api_override=stack.api_url)
    answer = consumer.versions("adult", with_lineage=True)
    assert answer.ok and answer.body["versions"] and all("lineage" not in v for v in answer.body["versions"])


# -- as a server: the socket level, with a stand-in function --------------------------------------


@pytest.fixture
def echo_api() -> Iterator[tuple[HttpApiServer, list[socket.socket]]]:
    """A bare local API on a free port whose one route echoes the path parameter; it records the
    sockets it accepts."""
    server = HttpApiServer("127.0.0.1", 0)
    server.configure(
        [route("POST", "/echo/{word}")],
        lambda _function, event: (
            json.dumps({"word": event["pathParameters"]["word"]}).encode(),
            False,
        ),
    )
    accepted: list[socket.socket] = []
    get_request = server._httpd.get_request

    def recording_get_request() -> tuple[socket.socket, Any]:
        connection, address = get_request()
        accepted.append(connection)
        return connection, address

    server._httpd.get_request = recording_get_request  # type: ignore[method-assign]
    server.start()
    try:
        yield server, accepted
    finally:
        server.stop()


def test_only_routes_the_template_guards_are_checked_and_unknown_authorizers_refuse() -> None:
    # Given routes without authorization, with IAM and with a JWT authorizer the emulator lacks
    server = HttpApiServer("127.0.0.1", 0)
    seen: list[dict[str, Any]] = []

    def echo(_function: str, event: dict[str, Any]) -> tuple[bytes, bool]:
        seen.append(event)
        return b'{"ok": true}', False

    routes = [HttpRoute("Fn", "GET", "/open", "Open", "NONE"), HttpRoute("Fn", "GET", "/iam", "Iam", "AWS_IAM"),
              HttpRoute("Fn", "GET", "/jwt", "Jwt", "JwtAuthorizer")]
    server.configure(routes, echo, IamAuthorizer("123456789012", "us-east-1", "local-http-api"))
    server.start()
    connection = connect(server.url)
    try:
        # Then an open route answers unsigned, without an authorizer context
        assert request(connection, "GET", "/open") == (200, {"ok": True})
        assert "authorizer" not in seen[-1]["requestContext"]
        # And the IAM route and the JWT route refuse an unsigned call before the function runs
        assert request(connection, "GET", "/iam") == (403, {"message": "Forbidden"})
        assert request(connection, "GET", "/jwt") == (403, {"message": "Forbidden"})
        assert len(seen) == 1
    finally:
        connection.close()
        server.stop()


def test_accepted_connections_send_small_segments_without_delay(echo_api) -> None:
    # Nagle's algorithm + the client's delayed ACK cost ~40 ms per keep-alive request.
    server, accepted = echo_api
    connection = connect(server.url)
    try:
        assert request(connection, "POST", "/echo/hi", {}) == (200, {"word": "hi"})
        # (asked while the connection is open: the server closes its socket when the client does)
        assert len(accepted) == 1
        assert accepted[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        connection.close()


def test_a_response_arrives_in_one_piece(echo_api) -> None:
    # Given a raw connection
    server, _ = echo_api
    with socket.create_connection((server.host, server.port), timeout=10) as raw:
        for word in ("one", "two", "three"):
            # When a request is sent on it
            raw.sendall(
                f"POST /echo/{word} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode()
            )
            # Then the first read holds the status line, the headers and the whole body
            received = raw.recv(65536)
            head, _, body = received.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            assert json.loads(body) == {"word": word}


def test_the_stack_reserves_concurrency_and_throttles_as_the_template_says(stack: LocalStack) -> None:
    # Given the project's template deployed with prod's reservations (samconfig.toml)
    lam = stack.client("lambda")

    def reserved(function: str) -> int | None:
        return lam.get_function_concurrency(FunctionName=stack.function_name(function)).get(
            "ReservedConcurrentExecutions"
        )

    # Then inference has its reservation, training its cap, and the other stages share the pool
    assert (reserved("InferenceFunction"), reserved("TrainFunction"), reserved("ValidateFunction")) == (100, 5, None)
    # And the HTTP API throttles with the stage's DefaultRouteSettings, not the account's quota
    throttle = stack._api.throttle if stack._api is not None else None
    assert throttle is not None and (throttle.rate, throttle.burst) == (1000.0, 500)


def test_access_logging_deploys_its_log_bucket_open_only_to_s3_logging(stack: LocalStack) -> None:
    # Given the stack deployed with AccessLogging=true
    log_bucket = stack.outputs["AccessLogBucketName"]
    assert stack.resources["AccessLogBucket"] == log_bucket != stack.bucket
    # Then its bucket exists, versioned, and only S3's logging service may write to it (over TLS)
    s3 = stack.client("s3")
    assert s3.get_bucket_versioning(Bucket=log_bucket)["Status"] == "Enabled"
    policy = json.loads(s3.get_bucket_policy(Bucket=log_bucket)["Policy"])
    writers = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert [w["Principal"] for w in writers] == [{"Service": "logging.s3.amazonaws.com"}]
    assert writers[0]["Condition"]["ArnLike"]["aws:SourceArn"] == f"arn:aws:s3:::{stack.bucket}"
