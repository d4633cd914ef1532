"""Handlers against moto (in-process, mock_aws), fed their sample events from events/."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from tests.conftest import ROOT, fresh_mock_aws, head_bytes

EVENT_BUCKET = "stepml-databucket-example"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "events" / f"{name}.json").read_text())


def load_handler(stage: str) -> ModuleType:
    """Import functions/<stage>/app.py under a unique name (every function has an app.py)."""
    spec = importlib.util.spec_from_file_location(f"handler_{stage}", ROOT / "functions" / stage / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeContext:
    function_name = "stepml-test"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:stepml-test"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto S3 with the bucket the sample events name; handlers are told it by env var."""
    monkeypatch.setenv("STEPML_BUCKET", EVENT_BUCKET)
    with fresh_mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=EVENT_BUCKET)
        client.put_bucket_versioning(Bucket=EVENT_BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


@pytest.fixture
def invoke() -> Callable[[str, dict[str, Any]], Any]:
    handlers: dict[str, ModuleType] = {}

    def call(stage: str, event: dict[str, Any]) -> Any:
        if stage not in handlers:
            handlers[stage] = load_handler(stage)
        return handlers[stage].lambda_handler(event, FakeContext())

    return call


@pytest.fixture
def adult_upload(s3: Any, adult_csv: Path) -> dict[str, Any]:
    """The first 2,000 Adult rows at the key the sample upload event names."""
    event = load_event("validate")
    key = event["event"]["detail"]["object"]["key"]
    put = s3.put_object(Bucket=EVENT_BUCKET, Key=key, Body=head_bytes(adult_csv, 2000))
    return {"key": key, "etag": put["ETag"].strip('"'), "version_id": put.get("VersionId")}
