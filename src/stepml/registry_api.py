"""Registry operations over the HTTP API (for the UI): versions, history, diff, promote, rollback,
lineage, and the feedback labels of served predictions. Its routes are rows of :data:`stepml.routes.ROUTES`; promote, rollback and lineage are
for holders of the stack's operator policy only (IAM decides, before the function runs).

A separate function from inference so that only this one may write aliases, and the prediction
path stays read-only. Every request is checked whole - model name, versions, body size, fields,
types and the reason's length - before anything is read or written: a refused promotion or
rollback leaves the alias object as it was.

A promotion passes the pipeline's quality gate (:data:`stepml.registry.PROMOTION_RULE`): refused,
it is a 409 carrying the gate's decision; ``"force": true`` with a non-empty ``reason`` overrides
it, recorded in the history with the caller. A rollback is not gated: it is the escape hatch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stepml import feedback, registry
from stepml.capture import caller_of
from stepml.errors import ConfigError, GateRefused, NotFoundError, RequestError
from stepml.httpapi import error_response, request_body, response
from stepml.inputs import MAX_VERSION, is_unicode, parse_body, parse_version, quoted, shown
from stepml.keys import DATASET_NAME
from stepml.registry import ModelRegistry
from stepml.routes import REGISTRY_FUNCTION, routes_of
from stepml.storage import Store

#: The fields each write accepts; any other is refused (so a body's field count is bounded too).
PROMOTE_FIELDS = ("version", "reason", "force")
ROLLBACK_FIELDS = ("reason",)
#: History entries a page holds unless ``?limit=`` says fewer (and at most).
HISTORY_PAGE = 100


def _response(status: int, body: Any) -> dict[str, Any]:
    return response(status, body, default=str)


def _actor(event: dict[str, Any]) -> str:
    context = event.get("requestContext") or {}
    claims = ((context.get("authorizer") or {}).get("jwt") or {}).get("claims") or {}
    iam = (context.get("authorizer") or {}).get("iam") or {}
    who = claims.get("email") or claims.get("sub") or iam.get("userArn")
    if not who and iam.get("accountId"):
        who = f"account {iam['accountId']}"
    return shown(str(who or f"api@{(context.get('http') or {}).get('sourceIp', 'unknown')}"))


def _invalid(field: str, message: str) -> RequestError:
    return RequestError(f"'{field}' {message}", status=422,
                        details=[{"row": None, "field": field, "message": message}])


def _model_name(params: dict[str, str]) -> str:
    name = params.get("name", "")
    if not DATASET_NAME.fullmatch(name):
        raise NotFoundError(f"no model named {quoted(name)}")
    return name


def _required_version(value: Any, field: str = "version") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
        raise _invalid(field, f"must be a positive whole number (1 to {MAX_VERSION}), got {quoted(value)}")
    return value


def _reason(body: dict[str, Any], default: str) -> str:
    reason = body.get("reason")
    if reason is None or reason == "":
        return default
    if not isinstance(reason, str):
        raise _invalid("reason", f"must be a string, got {type(reason).__name__}")
    if len(reason) > registry.MAX_REASON_CHARS:
        raise _invalid("reason", f"is {len(reason)} characters; the limit is {registry.MAX_REASON_CHARS}")
    if not is_unicode(reason):
        raise _invalid("reason", "is not valid Unicode text: it holds a lone surrogate")
    return reason


def _force(body: dict[str, Any]) -> bool:
    """``force`` (a JSON boolean); forcing needs a reason of its own, kept in the history."""
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise _invalid("force", f"must be true or false, got {quoted(force)}")
    reason = body.get("reason")
    if force and (not isinstance(reason, str) or not reason.strip()):
        raise _invalid("reason", "is required when forcing a promotion past the quality gate: say why")
    return force


def _refused(exc: GateRefused) -> dict[str, Any]:
    """409: the gate's reason in the usual message shape, and its whole decision."""
    message = f"{exc}; to promote it anyway send \"force\": true with a reason"
    return _response(409, {"message": message,
                           "errors": [{"row": None, "field": "version", "message": exc.decision.get("reason")}],
                           "gate": exc.decision})


def _write_body(event: dict[str, Any], allowed: tuple[str, ...], required: bool) -> dict[str, Any]:
    """The JSON object of a promote/rollback, with only the ``allowed`` fields."""
    raw = request_body(event)
    if not required and (raw is None or not raw.strip()):
        return {}
    body = parse_body(raw)
    shape = "{" + ", ".join(f'"{field}": …' for field in allowed) + "}"
    if not isinstance(body, dict):
        raise RequestError(f"the body must be a JSON object {shape}, got {type(body).__name__}")
    unknown = [field for field in body if field not in allowed]
    if unknown:
        names = ", ".join(repr(shown(field)) for field in unknown[:10])
        more = f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else ""
        raise RequestError(f"unknown field(s) {names}{more}: the body is {shape}", status=422,
                           details=[{"row": None, "field": shown(field), "message": "unknown field"}
                                    for field in unknown[:10]], total=len(unknown))
    return body


def _history_entry(entry: dict[str, Any]) -> dict[str, Any]:
    # Reasons written before they were bounded may be huge: show them shortened.
    reason = entry.get("reason")
    if isinstance(reason, str) and len(reason) > registry.MAX_REASON_CHARS:
        return {**entry, "reason": f"{reason[:registry.MAX_REASON_CHARS]}... ({len(reason)} characters)"}
    return entry


def _history_page(query: dict[str, str]) -> tuple[int, int | None]:
    """``?limit=`` (1 to :data:`HISTORY_PAGE`) and ``?before=`` (an entry's ``seq``) of a history read."""
    limit = parse_version(query.get("limit") or None, "limit") or HISTORY_PAGE
    if limit > HISTORY_PAGE:
        raise RequestError(f"limit must be at most {HISTORY_PAGE}, got {limit}")
    return limit, parse_version(query.get("before") or None, "before")


#: What a consumer may read of a version; ``lineage`` (the source's bucket, key and object version,
#: the run and its execution ARN, with the account id) is served by the operator-only route.
OPERATOR_ONLY_FIELDS = ("lineage",)


def _public(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in meta.items() if key not in OPERATOR_ONLY_FIELDS}


def _version_number(params: dict[str, str]) -> int:
    version = parse_version(params.get("version") or "")
    assert version is not None
    return version


def _list_versions(event: dict[str, Any], models: ModelRegistry, name: str) -> Any:
    versions = models.list_versions(name)
    if not versions:
        raise NotFoundError(f"no registered versions of {name!r}")
    return {"name": name, "versions": [_public(meta) for meta in versions]}


def _show_version(event: dict[str, Any], models: ModelRegistry, name: str) -> Any:
    version = _version_number(event.get("pathParameters") or {})
    return _public(models.get_version_with_aliases(name, version))


def _lineage(event: dict[str, Any], models: ModelRegistry, name: str) -> Any:
    version = _version_number(event.get("pathParameters") or {})
    meta = models.get_version(name, version)
    return {"name": name, "version": version, "lineage": meta.get("lineage")}


def _history(event: dict[str, Any], models: ModelRegistry, name: str) -> Any:
    limit, before = _history_page(event.get("queryStringParameters") or {})
    record = models.alias_record(name, registry.CHAMPION)
    page = models.history(name, registry.CHAMPION, limit=limit, before=before)
    # Newest first; the next page is ?before=<next_before> (None: this is the oldest).
    return {"name": name, "alias": registry.CHAMPION,
            "version": record["version"] if record else None,
            "rollback_to": registry.rollback_target(record),
            "rollback_rule": registry.ROLLBACK_RULE,
            "promotion_rule": registry.PROMOTION_RULE,
            "total": page["total"], "next_before": page["next_before"],
            "history": [_history_entry(e) for e in page["entries"]]}


def _diff(event: dict[str, Any], models: ModelRegistry, name: str) -> Any:
    query = event.get("queryStringParameters") or {}
    first, second = parse_version(query.get("a") or None, "a"), parse_version(query.get("b") or None, "b")
    if first is None or second is None:
        raise RequestError("give the two versions to compare as ?a=<version>&b=<version>")
    return registry.diff_versions(models.get_version(name, first), models.get_version(name, second))


def _promote(event: dict[str, Any], models: ModelRegistry, name: str) -> Any:
    body = _write_body(event, PROMOTE_FIELDS, required=True)
    version = _required_version(body.get("version"))
    reason = _reason(body, "promoted from the API")
    force = _force(body)
    return models.promote_by_hand(name, version, reason, _actor(event), force=force)


def _rollback(event: dict[str, Any], models: ModelRegistry, name: str) -> Any:
    reason = _reason(_write_body(event, ROLLBACK_FIELDS, required=False), "rolled back from the API")
    return models.rollback(name, reason, actor=_actor(event))


def _feedback(event: dict[str, Any], models: ModelRegistry, name: str) -> Any:
    """Labels for served predictions (:mod:`stepml.feedback`), stored under feedback/<name>/."""
    body = parse_body(request_body(event))
    items = feedback.parse_items(body)
    if not models.has_model(name):
        raise NotFoundError(f"no model named {quoted(name)}")
    feedback.store_items(models.store, name, items, caller_of(event))
    return {"model": name, "accepted": len(items)}


#: What each route of :data:`stepml.routes.ROUTES` served by this function does (by event id);
#: every one acts on the model named in the path, checked first.
OPERATIONS: dict[str, Callable[[dict[str, Any], ModelRegistry, str], Any]] = {
    "ListVersions": _list_versions,
    "ShowVersion": _show_version,
    "AliasHistory": _history,
    "DiffVersions": _diff,
    "Promote": _promote,
    "Rollback": _rollback,
    "Lineage": _lineage,
    "Feedback": _feedback,
}
_ROUTES = routes_of(REGISTRY_FUNCTION)


def handle(event: dict[str, Any], store: Store) -> dict[str, Any]:
    """Route one registry request; a bad request is a 4xx with a readable message."""
    route = _ROUTES.get(event.get("routeKey", ""))
    if route is None:
        return _response(404, {"message": f"no route {event.get('routeKey', '')!r}"})
    try:
        name = _model_name(event.get("pathParameters") or {})
        return _response(200, OPERATIONS[route.event](event, ModelRegistry(store), name))
    except RequestError as exc:
        return error_response(exc)
    except NotFoundError as exc:
        return _response(404, {"message": str(exc)})
    except GateRefused as exc:
        return _refused(exc)
    except ConfigError as exc:
        return _response(409, {"message": str(exc)})
