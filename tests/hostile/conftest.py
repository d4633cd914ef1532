"""Shared by the hostile tier's API and registry cases: registered ONNX models on moto S3, the two
HTTP functions called with API Gateway v2 events, and a snapshot of everything under ``models/``
(keys and alias objects) to prove a refused request wrote nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from stepml import registry
from stepml.api import handle as handle_predict
from stepml.registry_api import handle as handle_registry
from stepml.serving import ModelServer
from stepml.settings import Settings
from stepml.storage import S3Store
from tests.functional.conftest import EVENT_BUCKET, s3  # noqa: F401  (the moto S3 fixture)
from tests.functional.inference_models import classifier_onnx, regressor_onnx
from tests.functional.test_inference_api import register

#: What a call returns: status, parsed body, and the raw response (to measure it).
Call = Callable[..., tuple[int, Any, dict[str, Any]]]
#: Lambda's synchronous response limit: no answer may come near it.
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024


@pytest.fixture
def api_store(s3: Any) -> S3Store:  # noqa: F811  (the fixture imported above)
    return S3Store(Settings(bucket=EVENT_BUCKET))


@pytest.fixture
def api_models(api_store: S3Store) -> dict[str, int]:
    """``adult`` (a classifier, versions 1 and 2, v2 champion) and ``houses`` (a regressor)."""
    register(api_store, "adult", classifier_onnx(), "classification")
    return {
        "adult": register(api_store, "adult", classifier_onnx(1), "classification"),
        "houses": register(api_store, "houses", regressor_onnx(), "regression"),
    }


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


@pytest.fixture
def predict_call(api_store: S3Store) -> Call:
    """Calls the prediction function's handler (one warm server, as in Lambda)."""
    server = ModelServer(api_store)
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
    return registry.get_alias(store, name, registry.CHAMPION)
