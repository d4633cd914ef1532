"""The whole pipeline offline: the project's own template.yaml deployed into an in-process moto.

``local_stack`` (session-scoped) is the real application — real handlers, real state machine, real
HTTP API routes — served on free ports. Tests talk to it like a user would: ``stack.client("s3")``
(or any boto3 client with ``endpoint_url=stack.endpoint_url``), ``stack.api_url`` for HTTP, and
:func:`wait_for_execution` to get the outcome of an upload.

Example::

    def test_upload_trains_a_model(local_stack, adult_csv):
        since = upload(local_stack, "raw/adult/adult.csv", adult_csv.read_bytes())
        execution = wait_for_execution(local_stack, since=since, key="raw/adult/adult.csv")
        assert execution["status"] == "SUCCEEDED", execution.get("cause")
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from stepml.client import ApiClient
from stepml.local import LocalStack
from tests.conftest import ROOT


@contextlib.contextmanager
def s3_put_fault(match: Callable[[str], bool], code: str, status: int, times: int) -> Iterator[list[str]]:
    """Make the offline S3 refuse the first ``times`` puts of keys that ``match`` with ``code``.

    The handlers run in processes of their own, so a fault is injected where they meet AWS: in the
    endpoint's S3, as an S3 outage or a refusal would reach them on AWS. Yields the refused keys.
    """
    from moto.s3.exceptions import S3ClientError
    from moto.s3.models import S3Backend

    original = S3Backend.put_object
    refused: list[str] = []
    lock = threading.Lock()

    def put_object(self: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        with lock:
            refuse = match(key_name) and len(refused) < times
            if refuse:
                refused.append(key_name)
        if refuse:
            raise S3ClientError(code, f"injected by the test for {key_name} (HTTP {status})")
        return original(self, bucket_name, key_name, *args, **kwargs)

    S3Backend.put_object = put_object  # type: ignore[method-assign]
    try:
        yield refused
    finally:
        S3Backend.put_object = original  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    """The project's template deployed offline (stack name "stepml", as the CLI expects)."""
    with LocalStack(project_root=ROOT, port=0, api_port=0) as stack:
        yield stack


def api_client(stack: LocalStack) -> ApiClient:
    """A client of the stack's HTTP API that signs as its administrator (the operator policy)."""
    assert stack.admin_credentials is not None
    return ApiClient(stack.api_url, stack.region, stack.admin_credentials.client_kwargs())


def upload(stack: LocalStack, key: str, body: bytes) -> dt.datetime:
    """Put ``body`` at ``key`` in the data bucket; returns a ``since`` for :func:`wait_for_execution`.

    The returned time is taken just before the put (the execution starts during it), and a little
    early, because Step Functions dates are kept to the millisecond.
    """
    since = dt.datetime.now(dt.UTC) - dt.timedelta(milliseconds=5)
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=body)
    return since


def _execution_key(stack: LocalStack, execution_arn: str) -> str | None:
    """The S3 key in an execution's input (an S3 → EventBridge event), if it has one."""
    described = stack.client("stepfunctions").describe_execution(executionArn=execution_arn)
    try:
        return str(json.loads(described.get("input") or "{}")["detail"]["object"]["key"])
    except (KeyError, TypeError, ValueError):
        return None


def wait_for_execution(
    stack: LocalStack,
    since: dt.datetime | None = None,
    timeout: float = 300.0,
    key: str | None = None,
    poll: float = 0.1,
) -> dict[str, Any]:
    """The finished execution of the latest upload: ``describe_execution``'s answer.

    Parameters
    ----------
    stack
        The running local stack.
    since
        Only executions started at or after this moment count (e.g. what :func:`upload` returns);
        default: any.
    timeout
        Seconds to wait for the execution to start and finish; then ``TimeoutError`` (an
        execution still running is named in the message).
    key
        Only executions whose input event names this S3 key count.
    poll
        Seconds between checks.

    Returns
    -------
    dict
        ``status`` (SUCCEEDED, FAILED, TIMED_OUT, ABORTED), ``executionArn``, ``name``, ``input``,
        ``output`` (on success), ``error`` and ``cause`` (on failure)…
    """
    sfn = stack.client("stepfunctions")
    since_utc = (
        since.astimezone(dt.UTC)
        if since and since.tzinfo
        else (since.replace(tzinfo=dt.UTC) if since else None)
    )
    deadline = time.monotonic() + timeout
    latest: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        paginator = sfn.get_paginator("list_executions")
        executions = [
            e
            for page in paginator.paginate(stateMachineArn=stack.state_machine_arn)
            for e in page["executions"]
            if since_utc is None or e["startDate"].astimezone(dt.UTC) >= since_utc
        ]
        if key is not None:
            executions = [e for e in executions if _execution_key(stack, e["executionArn"]) == key]
        if executions:
            latest = max(executions, key=lambda e: e["startDate"])
            described: dict[str, Any] = sfn.describe_execution(executionArn=latest["executionArn"])
            if described["status"] != "RUNNING":
                return described
        time.sleep(poll)
    if latest is None:
        raise TimeoutError(
            f"no execution started since {since} (key {key!r}) within {timeout}s: does the upload "
            "match the EventBridge rule's pattern (raw/*.csv)?"
        )
    raise TimeoutError(f"execution {latest['executionArn']} still running after {timeout}s")
