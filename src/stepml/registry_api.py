"""Registry operations over the HTTP API (for the UI): versions, history, diff, promote, rollback.

A separate function from inference so that only this one may write aliases, and the prediction
path stays read-only.
"""

from __future__ import annotations

import json
from typing import Any

from stepml import registry
from stepml.errors import ConfigError, NotFoundError, RequestError
from stepml.inputs import parse_body
from stepml.storage import S3Store


def _response(status: int, body: Any) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"},
            "body": json.dumps(body, allow_nan=False, default=str)}


def _actor(event: dict[str, Any]) -> str:
    context = event.get("requestContext") or {}
    claims = ((context.get("authorizer") or {}).get("jwt") or {}).get("claims") or {}
    iam = (context.get("authorizer") or {}).get("iam") or {}
    who = claims.get("email") or claims.get("sub") or iam.get("userArn")
    return str(who or f"api@{(context.get('http') or {}).get('sourceIp', 'unknown')}")


def _required_version(value: Any, field: str = "version") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(f"'{field}' must be a positive whole number", status=422,
                           details=[{"row": None, "field": field, "message": "expected a positive integer"}])
    return value


def parse_version(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or int(value) < 1:
        raise RequestError(f"version must be a positive whole number, got {value!r}")
    return int(value)


def handle(event: dict[str, Any], store: S3Store) -> dict[str, Any]:
    """Route one registry request; a bad request is a 4xx with a readable message."""
    route = event.get("routeKey", "")
    params = event.get("pathParameters") or {}
    query = event.get("queryStringParameters") or {}
    name = params.get("name", "")
    try:
        if route == "GET /models/{name}/versions":
            versions = registry.list_versions(store, name)
            if not versions:
                raise NotFoundError(f"no registered versions of {name!r}")
            return _response(200, {"name": name, "versions": versions})
        if route == "GET /models/{name}/versions/{version}":
            version = parse_version(params.get("version"))
            assert version is not None
            meta = registry.get_version(store, name, version)
            meta["aliases"] = sorted(a for a, v in registry.list_aliases(store, name).items() if v == version)
            return _response(200, meta)
        if route == "GET /models/{name}/history":
            record = registry.alias_record(store, name, registry.CHAMPION)
            return _response(200, {"name": name, "alias": registry.CHAMPION,
                                   "version": record["version"] if record else None,
                                   "history": record.get("history", []) if record else []})
        if route == "GET /models/{name}/diff":
            first, second = parse_version(query.get("a")), parse_version(query.get("b"))
            if first is None or second is None:
                raise RequestError("give the two versions to compare as ?a=<version>&b=<version>")
            diff = registry.diff_versions(registry.get_version(store, name, first), registry.get_version(store, name, second))
            return _response(200, diff)
        if route == "POST /models/{name}/promote":
            body = parse_body(event.get("body"))
            if not isinstance(body, dict):
                raise RequestError("the body must be a JSON object {\"version\": N, \"reason\": \"…\"}")
            version = _required_version(body.get("version"))
            reason = str(body.get("reason") or "promoted from the API")
            record = registry.set_alias(store, name, registry.CHAMPION, version, reason, actor=_actor(event), action="promote")
            return _response(200, record)
        if route == "POST /models/{name}/rollback":
            body = parse_body(event.get("body") or "{}")
            reason = str((body or {}).get("reason") or "rolled back from the API") if isinstance(body, dict) else "rollback"
            return _response(200, registry.rollback(store, name, reason, actor=_actor(event)))
        return _response(404, {"message": f"no route {route!r}"})
    except RequestError as exc:
        return _response(exc.status, {"message": str(exc), "errors": exc.details})
    except NotFoundError as exc:
        return _response(404, {"message": str(exc)})
    except ConfigError as exc:
        return _response(409, {"message": str(exc)})
