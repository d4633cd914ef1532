"""The prediction API: API Gateway HTTP API (payload v2.0) events in, HTTP responses out."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from stepml.errors import NotFoundError, RequestError
from stepml.inputs import parse_body
from stepml.serving import ModelServer, parse_version

logger = logging.getLogger("stepml.api")


def response(status: int, body: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body, allow_nan=False),
    }


def _body(event: dict[str, Any]) -> str | None:
    body = event.get("body")
    if body is not None and event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", errors="replace")
    return body


def handle(event: dict[str, Any], server: ModelServer) -> dict[str, Any]:
    """Route one request; bad input is a 4xx with a readable message, never a 5xx."""
    route = event.get("routeKey", "")
    params = event.get("pathParameters") or {}
    query = event.get("queryStringParameters") or {}
    try:
        name = params.get("name", "")
        version = parse_version(query.get("version"))
        alias = query.get("alias") or None
        if route == "POST /models/{name}/predict":
            return response(200, server.predict(name, parse_body(_body(event)), version, alias))
        if route == "GET /models/{name}":
            return response(200, server.describe(name, version, alias))
        return response(404, {"message": f"no route {route!r}"})
    except RequestError as exc:
        return response(exc.status, {"message": str(exc), "errors": exc.details})
    except NotFoundError as exc:
        return response(404, {"message": str(exc)})
