"""The HTTP API client: SigV4 for execute-api, and a 403 that says what is missing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from stepml.client import ApiClient, forbidden_hint, signed_headers

KEYS = {"aws_access_key_id": "AKIAEXAMPLEEXAMPLE00", "aws_secret_access_key": "secret"}


def test_requests_are_signed_for_execute_api_in_the_stacks_region() -> None:
    headers = signed_headers("POST", "http://127.0.0.1:3000/models/adult/predict", b"{}", KEYS, "eu-west-1")
    authorization = headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEEXAMPLE00/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization and "X-Amz-Date" in headers
    assert "X-Amz-Security-Token" not in headers
    # Temporary credentials carry their session token, signed
    temporary = signed_headers("GET", "http://h/models", None, {**KEYS, "aws_session_token": "tok"}, "us-east-1")
    assert temporary["X-Amz-Security-Token"] == "tok" and "x-amz-security-token" in temporary["Authorization"]
    # Another body is another signature
    other = signed_headers("POST", "http://127.0.0.1:3000/models/adult/predict", b"{ }", KEYS, "eu-west-1")
    assert other["Authorization"] != authorization or other["X-Amz-Date"] != headers["X-Amz-Date"]


@pytest.mark.parametrize(("method", "path", "policy"), [
    ("POST", "/models/adult/promote", "operator policy arn:op"),
    ("POST", "/models/adult/rollback", "operator policy arn:op"),
    ("GET", "/lineage/adult/3", "operator policy arn:op"),
    ("POST", "/models/adult/predict", "consumer policy arn:co"),
    ("GET", "/models/adult/versions/2", "consumer policy arn:co"),
])
def test_a_403_names_the_policy_the_route_needs(method: str, path: str, policy: str) -> None:
    assert f"your identity lacks the stepml {policy}" in forbidden_hint(method, path, "arn:op", "arn:co")


@pytest.fixture
def forbidding_server() -> Iterator[str]:
    class Forbid(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"message": "Forbidden"}'
            self.send_response(403)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Forbid)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_403_says_what_is_missing(forbidding_server: str, monkeypatch) -> None:
    # Signed, but refused: the policy the route needs
    signed = ApiClient(forbidding_server, "us-east-1", KEYS, operator_policy_arn="arn:op")
    answer = signed.get("/lineage/a/1")
    assert answer.status == 403 and answer.body["hint"] == "your identity lacks the stepml operator policy arn:op"
    assert answer.message == "Forbidden - your identity lacks the stepml operator policy arn:op"
    # No credentials anywhere (boto3's chain found none): nothing signed the request
    monkeypatch.setattr(ApiClient, "credentials", property(lambda self: None))
    answer = ApiClient(forbidding_server, "us-east-1").get("/models")
    assert answer.status == 403 and answer.message.startswith("Forbidden - the request was not signed")
