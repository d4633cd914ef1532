"""Fuzz the prediction API from its own OpenAPI document (schemathesis): whatever a client sends,
the answer is never a 5xx, and every response matches the document (status, content type, schema).

The handler is called in-process through a small WSGI adapter that turns a request into the API
Gateway v2 event the HTTP API would send. Examples are bounded so `make test` stays quick.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance, unsupported_method

from stepml import registry_api
from stepml.api import handle, openapi_document
from stepml.routes import INFERENCE_FUNCTION
from stepml.routes import ROUTES as TABLE
from stepml.serving import ModelServer
from stepml.settings import Settings
from stepml.storage import S3Store
from tests.functional.conftest import EVENT_BUCKET
from tests.functional.inference_models import classifier_onnx, regressor_onnx
from tests.functional.test_inference_api import register

#: Examples per operation: enough to cover every bad-input branch, quick enough for `make test`.
MAX_EXAMPLES = 40


def _pattern(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$")


#: The routes the OpenAPI document lists (the prediction function's, and feedback), from the one table.
ROUTES = [(route.method, _pattern(route.path), route.route_key, route.function)
          for route in TABLE if route.in_openapi]


class HttpApiAdapter:
    """WSGI in, API Gateway HTTP API (payload 2.0) event to the handler, HTTP response out."""

    def __init__(self, server: ModelServer) -> None:
        self.server = server

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        for verb, pattern, route, function in ROUTES:
            match = pattern.match(path)
            if match and verb == method:
                event = {
                    "version": "2.0",
                    "routeKey": route,
                    "rawPath": path,
                    "pathParameters": match.groupdict() or None,
                    "queryStringParameters": query or None,
                    "body": base64.b64encode(body).decode() if body else None,
                    "isBase64Encoded": bool(body),
                }
                if function == INFERENCE_FUNCTION:
                    # Every capture line the fuzzed requests produce must be one valid JSON document.
                    result = handle(event, self.server, emit=json.loads)
                else:
                    result = registry_api.handle(event, self.server.store)
                break
        else:
            result = {"statusCode": 404, "headers": {"content-type": "application/json"},
                      "body": json.dumps({"message": "Not Found"})}
        start_response(f"{result['statusCode']} X", list(result["headers"].items()))
        return [result["body"].encode()]


@pytest.fixture
def app(s3: Any) -> HttpApiAdapter:
    store = S3Store(Settings(bucket=EVENT_BUCKET))
    register(store, "adult", classifier_onnx(), "classification")
    register(store, "houses", regressor_onnx(), "regression")
    return HttpApiAdapter(ModelServer(store))


def test_the_served_document_is_the_one_fuzzed(app: HttpApiAdapter) -> None:
    from werkzeug.test import Client

    response = Client(app).get("/openapi.json")
    assert response.status_code == 200 and response.get_json() == openapi_document()


schema = schemathesis.openapi.from_dict(openapi_document())


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_fails_and_matches_its_openapi_document(case: Any, app: HttpApiAdapter) -> None:
    # Two checks do not apply: API Gateway itself answers a method no route declares with 404, not
    # 405; and a record's fields depend on the model (GET /models/{name} gives them), so the
    # document's generic Record lets through bodies a given model answers with a documented 422.
    response = case.call_and_validate(app=app, excluded_checks=[unsupported_method, positive_data_acceptance])
    assert response.status_code < 500
