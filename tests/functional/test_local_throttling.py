"""Concurrency and throttling offline, refused where AWS refuses them.

Given a function with reserved concurrency 1 whose one invocation is held inside its handler, When
another invocation comes, Then Lambda's Invoke API answers 429 TooManyRequestsException ("Rate
Exceeded.") and the HTTP API, as API Gateway, a 500. Given an HTTP API stage with a burst of 2,
When a third request comes at once, Then it gets 429 {"message": "Too Many Requests"} and no
function runs for it.
"""

from __future__ import annotations

import http.client
import io
import json
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from stepml.local import lambda_runner
from stepml.local.api import HttpApiServer
from stepml.local.template import HttpRoute
from stepml.local.throttle import (
    ACCOUNT_BURST_LIMIT,
    ACCOUNT_RATE_LIMIT,
    TokenBucket,
    stage_throttle,
)
from tests.conftest import fresh_mock_aws
from tests.functional.test_local_lambda_runner import make_function

ACCOUNT, REGION = "123456789012", "us-east-1"


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_admits_its_burst_then_the_steady_rate() -> None:
    # Given a stage with a burst of 2 and 4 requests per second
    clock = FakeClock()
    bucket = TokenBucket(rate=4, burst=2, clock=clock)
    # When 3 requests come at once, Then the third is throttled
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    # And a quarter second later one more gets through, but not two
    clock.now += 0.25
    assert [bucket.take(), bucket.take()] == [True, False]
    # And after a long quiet the bucket holds its burst, never more
    clock.now += 3600
    assert [bucket.take() for _ in range(3)] == [True, True, False]


def test_a_stage_without_limits_gets_the_accounts_quota() -> None:
    assert (stage_throttle(None).rate, stage_throttle(None).burst) == (ACCOUNT_RATE_LIMIT, ACCOUNT_BURST_LIMIT)
    bucket = stage_throttle({"ThrottlingRateLimit": "2.5", "ThrottlingBurstLimit": "7"})
    assert (bucket.rate, bucket.burst) == (2.5, 7)


def _serve(invoke: Any, throttle: TokenBucket | None = None) -> HttpApiServer:
    server = HttpApiServer(port=0)
    server.configure([HttpRoute(function="Fn", method="POST", path="/work", event="Work")], invoke)
    server.throttle = throttle
    server.start()
    return server


def _post(server: HttpApiServer, connection: http.client.HTTPConnection | None = None) -> tuple[int, Any]:
    address = urlsplit(server.url)
    connection = connection or http.client.HTTPConnection(address.hostname or "", address.port, timeout=60)
    connection.request("POST", "/work", body=b'{"n": 1}', headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def test_requests_beyond_the_stage_throttle_get_429_and_run_nothing() -> None:
    # Given an HTTP API whose stage allows a burst of 2 (and a clock that does not move)
    calls: list[str] = []

    def invoke(function: str, event: dict[str, Any]) -> tuple[bytes, bool]:
        calls.append(function)
        return b'{"ok": true}', False

    clock = FakeClock()
    server = _serve(invoke, TokenBucket(rate=1, burst=2, clock=clock))
    try:
        address = urlsplit(server.url)
        connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=60)
        # When 3 requests come on one keep-alive connection
        answers = [_post(server, connection) for _ in range(3)]
        # Then the third is refused as API Gateway refuses it, before the function runs
        assert answers == [(200, {"ok": True}), (200, {"ok": True}), (429, {"message": "Too Many Requests"})]
        assert calls == ["Fn", "Fn"]
        # And once the bucket refilled, the same connection is served again
        clock.now += 1.0
        assert _post(server, connection) == (200, {"ok": True})
        connection.close()
    finally:
        server.stop()


def test_reservations_that_leave_under_100_unreserved_executions_are_refused() -> None:
    # Lambda keeps 100 of the account's executions unreserved (default quota 1000)
    assert lambda_runner.unreserved_concurrency_problem({"InferenceFunction": 100, "TrainFunction": 5}) is None
    assert lambda_runner.unreserved_concurrency_problem({"InferenceFunction": None, "TrainFunction": 900}) is None
    problem = lambda_runner.unreserved_concurrency_problem({"InferenceFunction": 896, "TrainFunction": 5})
    assert problem is not None
    assert "901" in problem and "InferenceFunction 896" in problem and "minimum value of [100]" in problem
    # An account whose quota is 10 (new accounts start low) cannot reserve anything
    assert lambda_runner.unreserved_concurrency_problem({"InferenceFunction": 1}, quota=10) is not None


# -- reserved concurrency, through moto's Lambda API ---------------------------------------------

HELD_HANDLER = """
import pathlib, time

FOLDER = pathlib.Path({folder!r})

def lambda_handler(event, context):
    if event.get("hold"):
        (FOLDER / "started").write_text("yes")
        deadline = time.monotonic() + 60
        while not (FOLDER / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return {{"ok": True}}
"""


@pytest.fixture
def held_function(tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    """A function with reserved concurrency 1 run by the local runner, in moto (in-process)."""
    spec = make_function(tmp_path, "held", HELD_HANDLER.format(folder=str(tmp_path)))
    with fresh_mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(
            RoleName="held-role",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                    ],
                }
            ),
        )["Role"]["Arn"]
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("app.py", "")
        # No retries: botocore would retry a 429 itself, and the test is about that 429.
        client = boto3.client("lambda", region_name=REGION, config=Config(retries={"total_max_attempts": 1}))
        client.create_function(
            FunctionName="held",
            Runtime="python3.12",
            Role=role,
            Handler="app.lambda_handler",
            Code={"ZipFile": archive.getvalue()},
            MemorySize=512,  # enforced (strict): room for the environment's Python
        )
        client.put_function_concurrency(FunctionName="held", ReservedConcurrentExecutions=1)
        lambda_runner.install()
        lambda_runner.register(
            account_id=ACCOUNT,
            region=REGION,
            function_name="held",
            spec=spec,
            endpoint_url="http://127.0.0.1:1",
            stack_name="throttling-test",
        )
        try:
            yield client, tmp_path
        finally:
            (tmp_path / "release").write_text("yes")
            lambda_runner.unregister_stack("throttling-test", "http://127.0.0.1:1")
            lambda_runner.uninstall()


def test_an_invocation_beyond_reserved_concurrency_is_throttled_as_lambda_throttles_it(
    held_function: tuple[Any, Path],
) -> None:
    client, folder = held_function
    # Given the function's one reserved execution is busy (held inside its handler)
    first: dict[str, Any] = {}
    holder = threading.Thread(
        target=lambda: first.update(client.invoke(FunctionName="held", Payload=b'{"hold": true}'))
    )
    holder.start()
    deadline = time.monotonic() + 60
    while not (folder / "started").exists():
        assert time.monotonic() < deadline, "the held invocation never started"
        time.sleep(0.01)

    # When another invocation comes through the Invoke API
    with pytest.raises(ClientError) as refused:
        client.invoke(FunctionName="held", Payload=b"{}")
    # Then Lambda's throttling answer: 429 TooManyRequestsException, "Rate Exceeded."
    error = refused.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error["Error"]["Code"] == "TooManyRequestsException"
    assert error["Error"]["Message"] == "Rate Exceeded."
    assert error["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"

    # And through an HTTP API the client gets what API Gateway answers for a throttled function
    from moto.awslambda.models import lambda_backends

    deployed = lambda_backends[ACCOUNT][REGION].get_function("held")
    # (the local stack's API invokes its functions as this does)
    server = _serve(lambda function, event: lambda_runner.invoke_as_service(deployed, event))
    try:
        assert _post(server) == (500, {"message": "Internal Server Error"})
    finally:
        server.stop()

    # And once the held invocation ends, the execution is free again
    (folder / "release").write_text("yes")
    holder.join(timeout=60)
    assert json.loads(first["Payload"].read()) == {"ok": True}
    second = client.invoke(FunctionName="held", Payload=b"{}")
    assert json.loads(second["Payload"].read()) == {"ok": True}


def test_put_function_concurrency_keeps_lambdas_unreserved_minimum(
    held_function: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the account's quota as the local stack sets it for moto
    monkeypatch.setenv("MOTO_LAMBDA_CONCURRENCY_QUOTA", str(lambda_runner.ACCOUNT_CONCURRENCY))
    client, _ = held_function
    # When a reservation would leave fewer than 100 executions unreserved, Then it is refused
    with pytest.raises(ClientError) as refused:
        client.put_function_concurrency(FunctionName="held", ReservedConcurrentExecutions=901)
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "below its minimum value of [100]" in refused.value.response["Error"]["Message"]
