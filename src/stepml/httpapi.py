"""What the prediction and registry functions share at the HTTP edge: the request body of an API
Gateway HTTP API (payload format 2.0) event, and responses that stay inside Lambda's limits.

The standard library and orjson only (the inference function's cold start imports it).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson

from stepml.errors import RequestError

#: Lambda's limit on a synchronous response: the whole payload, in which the body is an escaped string.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
#: Room left for the payload's other fields (status code, headers).
_ENVELOPE_BYTES = 1024


def request_body(event: dict[str, Any]) -> str | bytes | None:
    """The body as sent: text, or bytes when API Gateway base64-encoded it (a non-text content type)."""
    body = event.get("body")
    if body is not None and event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except ValueError as exc:
            raise RequestError(f"the request body is not valid base64: {exc}") from exc
    return body


def dumps(body: Any, default: Any = None) -> str:
    """``body`` as ASCII JSON text. orjson writes it in ~1 us where ``json`` takes ~8 (a warm
    prediction is ~150 us); what orjson cannot write as ASCII (a type it does not know, text
    beyond ASCII, which Lambda's response would escape up to 12-fold) goes through ``json``, so
    the 2-fold escaping bound below holds. orjson writes NaN as null where ``json`` refuses it."""
    if default is None:
        try:
            raw: bytes | None = orjson.dumps(body)
        except TypeError:  # a type orjson does not write (numpy scalars, ...)
            raw = None
        if raw is not None and raw.isascii():
            return raw.decode("ascii")
    return json.dumps(body, allow_nan=False, default=default)


def response(status: int, body: Any, default: Any = None) -> dict[str, Any]:
    """The API Gateway response; one that would break Lambda's response limit is a 413 instead
    (Lambda would turn it into an error, and API Gateway into a 500)."""
    text = dumps(body, default)
    # Escaping the body into the payload at most doubles it: only a large body needs measuring.
    if len(text) > (MAX_RESPONSE_BYTES - _ENVELOPE_BYTES) // 2:
        size = len(json.dumps(text))
        if size > MAX_RESPONSE_BYTES - _ENVELOPE_BYTES:
            status = 413
            text = json.dumps({
                "message": f"the response would be {size} bytes, over Lambda's limit of {MAX_RESPONSE_BYTES}: "
                "ask for less per request (fewer instances)",
                "errors": [],
            })
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": text}


def error_response(exc: RequestError) -> dict[str, Any]:
    """The 4xx of a refused request: its message, the problems listed and, when only the first
    were listed, how many there were (``error_count``)."""
    body: dict[str, Any] = {"message": str(exc), "errors": exc.details}
    if exc.total > len(exc.details):
        body["error_count"] = exc.total
    return response(exc.status, body)
