"""Shared by the hostile tier's API and registry cases: registered ONNX models on moto S3, the two
HTTP functions called with API Gateway v2 events, and a snapshot of everything under ``models/``
(keys and alias objects) to prove a refused request wrote nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from stepml import registry
from stepml.api import handle as handle_predict
from stepml.registry import ModelRegistry
from stepml.registry_api import handle as handle_registry
from stepml.serving import ModelServer
from stepml.settings import Settings
from stepml.storage import S3Store
from tests.conftest import fresh_mock_aws
from tests.functional.inference_models import classifier_onnx, regressor_onnx
from tests.functional.test_inference_api import register

#: What a call returns: status, parsed body, and the raw response (to measure it).
Call = Callable[..., tuple[int, Any, dict[str, Any]]]
#: Lambda's synchronous response limit: no answer may come near it.
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024


@pytest.fixture(scope="module")
def api_aws() -> Iterator[Any]:
    """One moto S3 per test module (starting it is the slow part); each test gets its own bucket."""
    with fresh_mock_aws():
        yield boto3.client("s3", region_name="us-east-1")


def _new_store(client: Any) -> S3Store:
    bucket = f"stepml-hostile-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return S3Store(Settings(bucket=bucket))


@pytest.fixture
def api_store(api_aws: Any) -> S3Store:
    """An empty bucket of this test's own."""
    return _new_store(api_aws)


@pytest.fixture(scope="module")
def served_store(api_aws: Any) -> S3Store:
    """A bucket shared by a module's read-only cases: ``adult`` (a classifier; versions 1 and 2, v2
    champion) and ``houses`` (a regressor)."""
    store = _new_store(api_aws)
    register(store, "adult", classifier_onnx(), "classification")
    register(store, "adult", classifier_onnx(1), "classification")
    register(store, "houses", regressor_onnx(), "regression")
    return store


def _event(route: str, name: str | None, body: Any, query: dict[str, str] | None, raw: Any,
           path: dict[str, str] | None, base64: bool) -> dict[str, Any]:
    event: dict[str, Any] = {"version": "2.0", "routeKey": route, "isBase64Encoded": base64,
                             "requestContext": {"http": {"sourceIp": "198.51.100.7"}}}
    params = dict(path or {})
    if name is not None:
        params["name"] = name
    if params:
        event["pathParameters"] = params
    if query:
        event["queryStringParameters"] = query
    if raw is not None:
        event["body"] = raw
    elif body is not None:
        event["body"] = json.dumps(body)
    return event


def _caller(handler: Callable[[dict[str, Any]], dict[str, Any]]) -> Call:
    def call(route: str, name: str | None = None, body: Any = None, query: dict[str, str] | None = None,
             raw: Any = None, path: dict[str, str] | None = None, base64: bool = False) -> tuple[int, Any, dict[str, Any]]:
        result = handler(_event(route, name, body, query, raw, path, base64))
        assert result["headers"]["content-type"] == "application/json"
        assert len(json.dumps(result)) < LAMBDA_RESPONSE_LIMIT, "the response would break Lambda's limit"
        return result["statusCode"], json.loads(result["body"]), result

    return call


@pytest.fixture(scope="module")
def predict_call(served_store: S3Store) -> Call:
    """Calls the prediction function's handler over :func:`served_store` (one warm server, as in Lambda)."""
    server = ModelServer(served_store)
    return _caller(lambda event: handle_predict(event, server))


@pytest.fixture
def registry_call(api_store: S3Store) -> Call:
    """Calls the registry function's handler."""
    return _caller(lambda event: handle_registry(event, api_store))


def registry_state(store: S3Store) -> dict[str, Any]:
    """Every key under ``models/`` with its bytes' length, and every alias object in full."""
    state: dict[str, Any] = {}
    for key in store.list_keys("models/"):
        if "/aliases/" in key:
            state[key] = store.find_json(key)
        else:
            state[key] = len(store.get_bytes(key))
    return state


def champion(store: S3Store, name: str = "adult") -> int | None:
    return ModelRegistry(store).alias_version(name, registry.CHAMPION)


# -- a registry with three evaluated versions of "adult" (v2 champion, v1 before it) -------------


def add_versions(store: S3Store, name: str = "adult", count: int = 3) -> None:
    for i, accuracy in enumerate([0.8 + i / 100 for i in range(count)]):
        meta = {"evaluation": {"primary_metric": "accuracy", "higher_is_better": True,
                               "metrics": {"accuracy": accuracy}, "baseline": {"accuracy": 0.5}},
                "schema": [], "recipe": "auto", "train_rows": 10, "test_rows": 5}
        ModelRegistry(store).register_version(name, f"run-{i}", {"model.joblib": b"m"}, meta)


@pytest.fixture
def adult(api_store: S3Store) -> S3Store:
    add_versions(api_store)
    for version in (1, 2):
        ModelRegistry(api_store).set_alias("adult", registry.CHAMPION, version, "setup", action="promote")
    return api_store
