"""The prediction API: API Gateway HTTP API (payload v2.0) events in, HTTP responses out.

Routes (one table, :data:`stepml.routes.ROUTES`: template.yaml's HttpApi events and
:func:`openapi_document` are tested against it):

``POST /models/{name}/predict``   a record ``{feature: value}`` or ``{"instances": [...]}``
``GET  /models/{name}``           version, metrics and the feature schema
``GET  /models``                  registered models with their champion versions
``GET  /openapi.json``            the OpenAPI 3 document of this API

``?version=`` or ``?alias=`` picks a version (default: the ``champion`` alias). Bad input is a 4xx
naming the problem - 400 malformed body, 413 over a limit, 422 a field's value, 404 an unknown model
- never a 5xx. Every limit is checked before the work it bounds, and no response can outgrow
Lambda's 6 MB: a 422 lists its first problems and counts the rest.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from stepml import __version__, capture, feedback
from stepml.errors import NotFoundError, RequestError, StepmlError
from stepml.httpapi import error_response, request_body, response
from stepml.inputs import (
    MAX_BODY_BYTES,
    MAX_FIELDS,
    MAX_INSTANCES,
    MAX_LISTED_ERRORS,
    MAX_VALUE_CHARS,
    parse_body,
    parse_version,
    quoted,
    records_from,
)
from stepml.keys import DATASET_NAME
from stepml.registry import CHAMPION
from stepml.routes import INFERENCE_FUNCTION, ROUTES, routes_of
from stepml.serving import LoadedModel, ModelServer

logger = logging.getLogger("stepml.api")


def _model_name(params: dict[str, str]) -> str:
    name = params.get("name", "")
    if not DATASET_NAME.fullmatch(name):
        raise NotFoundError(f"no model named {quoted(name)}")
    return name


def _predict(event: dict[str, Any], server: ModelServer, params: dict[str, str], query: dict[str, str]) -> Any:
    version, alias = parse_version(query.get("version")), query.get("alias")
    return server.predict(_model_name(params), parse_body(request_body(event)), version, alias)


def _describe(event: dict[str, Any], server: ModelServer, params: dict[str, str], query: dict[str, str]) -> Any:
    version = parse_version(query.get("version"))
    return server.describe(_model_name(params), version, query.get("alias"))


#: What each route of :data:`stepml.routes.ROUTES` served by this function does (by event id).
OPERATIONS: dict[str, Callable[[dict[str, Any], ModelServer, dict[str, str], dict[str, str]], Any]] = {
    "Predict": _predict,
    "DescribeModel": _describe,
    "ListModels": lambda event, server, params, query: {"models": server.list_models()},
    "OpenApi": lambda event, server, params, query: openapi_document(),
}
_ROUTES = routes_of(INFERENCE_FUNCTION)


#: Where a capture line goes: stdout, which Lambda sends to the function's CloudWatch log group.
Emit = Callable[[str], None]


def _captured_predict(event: dict[str, Any], server: ModelServer, emit: Emit | None, started: float) -> dict[str, Any]:
    """Predict, and emit the request's capture record (:mod:`stepml.capture`) unless its model
    version's mode is ``off``. A request whose model version cannot be resolved (no such model,
    version or alias; a malformed ``?version=``) leaves no record: there is no model to file it under."""
    params, query = event.get("pathParameters") or {}, event.get("queryStringParameters") or {}
    name, alias = params.get("name", ""), query.get("alias")
    version: int | None = None
    resolvable = False
    payload: Any = None
    result: dict[str, Any] | None = None
    loaded: LoadedModel | None = None
    error: str | None = None
    try:
        _model_name(params)
        version = parse_version(query.get("version"))
        resolvable = True
        payload = parse_body(request_body(event))
        loaded, result = server.serve(name, payload, version, alias)
        answer = response(200, result)
    except RequestError as exc:
        answer, error = error_response(exc), str(exc)
    except NotFoundError as exc:
        answer, error = response(404, {"message": str(exc)}), str(exc)
    if emit is None or not resolvable:
        return answer
    if loaded is None:  # refused: which version would have answered, if any
        try:
            loaded = server.model(name, version, alias)
        except StepmlError:  # no such model, version or alias: nothing to file the record under
            return answer
        except Exception:  # an S3 failure while resolving it: capture never changes the answer
            logger.warning("no capture record: model %r could not be resolved", name, exc_info=True)
            return answer
    mode = capture.mode_of(loaded.meta)
    if mode != "off":
        try:  # the records as sent (after the request's own checks, which decide its answer)
            rows: list[Any] | None = records_from(payload) if payload is not None else None
        except RequestError:
            rows = None
        emit(capture.line(capture.record(
            event=event, model=name, version=int(loaded.meta["version"]),
            alias=None if version is not None else (alias or CHAMPION),
            task=loaded.meta["task"], mode=mode, rows=rows, result=result,
            latency_ms=(time.perf_counter() - started) * 1000, status=answer["statusCode"], error=error,
        )))
    return answer


def log_line(text: str) -> None:
    """Write ``text`` to stdout as one line in one write (``print`` makes two: the text, then the
    newline, each a system call when stdout is unbuffered, as the capture line's stdout may be)."""
    sys.stdout.write(text + "\n")


def handle(event: dict[str, Any], server: ModelServer, emit: Emit | None = log_line) -> dict[str, Any]:
    """Route one request; bad input is a 4xx with a readable message, never a 5xx. A prediction
    request also writes its capture record with ``emit`` (one line; None: no capture)."""
    started = time.perf_counter()
    route = _ROUTES.get(event.get("routeKey", ""))
    if route is None:
        return response(404, {"message": f"no route {event.get('routeKey', '')!r}"})
    if route.event == "Predict":
        return _captured_predict(event, server, emit, started)
    try:
        return response(200, OPERATIONS[route.event](
            event, server, event.get("pathParameters") or {}, event.get("queryStringParameters") or {}))
    except RequestError as exc:
        return error_response(exc)
    except NotFoundError as exc:
        return response(404, {"message": str(exc)})


# --- OpenAPI -------------------------------------------------------------------------------------

_VALUE = {"type": ["number", "string", "null"]}
_ERROR_RESPONSES = {
    "400": "Malformed request: empty body, not JSON, NaN/Infinity, nested too deeply to parse, not an "
    "object, empty batch, a version that is not ASCII digits, a bad alias name",
    "404": "No such model, version or alias",
    "413": f"Body over {MAX_BODY_BYTES} bytes, more than {MAX_INSTANCES} instances, a record with more than "
    f"{MAX_FIELDS} fields (or than the model's features and ignored columns, if more), or a response that "
    "would exceed Lambda's 6 MB",
    "422": "A field is unknown (not a feature nor an ignored column of the training CSV), missing where "
    "the model cannot serve a missing value, of the wrong type (a string that is no number for a numeric "
    "feature), not finite, sent twice (names differing only in the spaces around them), or a string over "
    f"{MAX_VALUE_CHARS} characters (or the model's longest category) - each named with its row. At most "
    f"{MAX_LISTED_ERRORS} are listed; `error_count` then says how many there were",
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _errors(*codes: str) -> dict[str, Any]:
    return {
        code: {"description": _ERROR_RESPONSES[code], "content": _json({"$ref": "#/components/schemas/Error"})}
        for code in codes
    }


_SELECTORS = [
    {
        "name": "version",
        "in": "query",
        "required": False,
        "description": "Serve this version (default: the version the alias names).",
        "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,8}$"},
    },
    {
        "name": "alias",
        "in": "query",
        "required": False,
        "description": "Serve the version this alias names (default: champion).",
        "schema": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,31}$"},
    },
]
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The model (dataset) name.",
    "example": "adult",
    "schema": {"type": "string", "pattern": DATASET_NAME.pattern},
}


def _paths(operations: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The document's paths: this function's routes in the route table, each with its operation."""
    paths: dict[str, Any] = {}
    for route in ROUTES:
        if route.in_openapi:
            paths.setdefault(route.path, {})[route.method.lower()] = {
                "operationId": route.operation_id, **operations[route.operation_id]}
    return paths


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of this API (served at ``GET /openapi.json``)."""
    record = {
        "type": "object",
        "description": "One value per feature (see GET /models/{name}): numbers for numeric features "
        "(or a string holding one as the training CSV writes it: `\"13.14\"`, `\"$1,234\"`, `\"45.2%\"` is "
        "45.2; a string that is no number is a 422), "
        "strings for categorical ones, and for a date feature the date as a string in the feature's "
        "`format`, as written in the training CSV (the model takes its year, month, day, day of week, "
        "day of year, and hour and minute when the format has a time; a string that format cannot "
        "read is served as a missing date, with a row warning). A feature whose `nullable` is true "
        "may be null or absent (the "
        "model serves a missing value; a row warning says so when it was never missing in training); "
        "any other missing value is a 422 saying why. Columns listed in the model's `ignored_columns` "
        "(the training CSV's target, dropped and id columns) may be sent and are ignored, named "
        "once in the row's warnings; any other field is a 422 `unknown field`. So a row may be sent as "
        "it stands in the training CSV, missing values as null or as training's missing markers "
        "(`\"\"`, `\"NA\"`, `\"n/a\"`, `\"null\"`, `\"NaN\"` in any case, `\"?\"`, `\"#N/A\"`, `\"None\"`: read as "
        "null, unless the version knows the string as one of the feature's categories). Field names "
        "are matched without the spaces around them, as training reads a header.",
        "additionalProperties": _VALUE,
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "stepml prediction API",
            "version": __version__,
            "description": "Predictions from registered stepml models, served as ONNX. Categories unseen "
            "in training and numbers outside the training range are accepted and flagged in the "
            "row's warnings. Every request is signed with AWS SigV4 (service execute-api) by an "
            "identity holding the stack's consumer or operator policy; unsigned requests get 403.",
        },
        "paths": _paths({
            "listModels": {
                "summary": "Registered models with their champion versions",
                "responses": {
                    "200": {"description": "The models", "content": _json({"$ref": "#/components/schemas/ModelList"})}
                },
            },
            "describeModel": {
                "summary": "A model version: metrics and the feature schema",
                "parameters": [_NAME, *_SELECTORS],
                "responses": {
                    "200": {
                        "description": "The version served",
                        "content": _json({"$ref": "#/components/schemas/ModelDescription"}),
                    },
                    **_errors("400", "404"),
                },
            },
            "predict": {
                "summary": "Predict one record or a batch",
                "parameters": [_NAME, *_SELECTORS],
                "requestBody": {
                    "required": True,
                    "content": _json(
                        {
                            "oneOf": [
                                {"$ref": "#/components/schemas/Record"},
                                {"$ref": "#/components/schemas/Batch"},
                            ]
                        }
                    ),
                },
                "responses": {
                    "200": {
                        "description": "One prediction per record, in order",
                        "content": _json({"$ref": "#/components/schemas/Prediction"}),
                    },
                    **_errors("400", "404", "413", "422"),
                },
            },
            "feedback": {
                "summary": "The true values of served predictions (joined to the capture records by "
                "request_id and row)",
                "parameters": [_NAME],
                "requestBody": {
                    "required": True,
                    "content": _json({"oneOf": [{"$ref": "#/components/schemas/Label"},
                                                {"$ref": "#/components/schemas/Labels"}]}),
                },
                "responses": {
                    "200": {"description": "The labels were stored", "content": _json({
                        "type": "object", "required": ["model", "accepted"],
                        "properties": {"model": {"type": "string"}, "accepted": {"type": "integer"}}})},
                    **_errors("400", "404", "413", "422"),
                },
            },
            "openApi": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3 document", "content": _json({"type": "object"})}},
            },
        }),
        "components": {
            "schemas": {
                "Record": record,
                "Label": {
                    "type": "object",
                    "description": "The true value of one predicted record: the prediction response's "
                    "`apigw-requestid` header (API Gateway's request id) and the record's position in the request",
                    "required": ["request_id", "actual"],
                    "additionalProperties": False,
                    "properties": {
                        "request_id": {"type": "string", "minLength": 1, "maxLength": feedback.MAX_REQUEST_ID_CHARS},
                        "row": {"type": "integer", "minimum": 0, "maximum": MAX_INSTANCES - 1, "default": 0},
                        "actual": {"type": ["string", "number"], "description": "A class label or a number"},
                    },
                },
                "Labels": {
                    "type": "object",
                    "required": ["items"],
                    "additionalProperties": False,
                    "properties": {"items": {"type": "array", "minItems": 1, "maxItems": feedback.MAX_ITEMS,
                                             "items": {"$ref": "#/components/schemas/Label"}}},
                },
                "Batch": {
                    "type": "object",
                    "description": "A batch: an object whose only key is `instances`, a list. Any other "
                    "object is one record (so a model may have a feature named `instances`).",
                    "required": ["instances"],
                    "additionalProperties": False,
                    "properties": {
                        "instances": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_INSTANCES,
                            "items": {"$ref": "#/components/schemas/Record"},
                        }
                    },
                },
                "Prediction": {
                    "type": "object",
                    "required": ["model", "version", "predictions", "warnings"],
                    "properties": {
                        "model": {"type": "string"},
                        "version": {"type": "integer", "minimum": 1},
                        "predictions": {
                            "type": "array",
                            "description": "Class labels as in the training data (classification) or numbers",
                            "items": {"oneOf": [{"type": "string"}, {"type": "number"}]},
                        },
                        "probabilities": {
                            "type": "array",
                            "description": "Classification only: each class's probability, per record",
                            "items": {"type": "object", "additionalProperties": {"type": "number"}},
                        },
                        "warnings": {
                            "type": "array",
                            "description": "Per record: unseen categories, values outside the training "
                            "range, missing values never missing in training, ignored columns",
                            "items": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
                "Feature": {
                    "type": "object",
                    "required": ["name", "kind", "required"],
                    "properties": {
                        "name": {"type": "string"},
                        "kind": {
                            "type": "string",
                            "enum": ["numeric", "categorical", "date"],
                            "description": "date: send a string in `format`; the model takes its `parts`",
                        },
                        "format": {
                            "type": "string",
                            "description": "Date features: how the string is read, `iso8601` (ISO 8601 "
                            "as Python's datetime.fromisoformat reads it, e.g. 2021-01-05 or "
                            "2021-01-05T13:45:00Z; JSON Schema format date / date-time) or a strptime "
                            "format such as %m/%d/%Y. A UTC offset is kept as written: the parts are "
                            "those of the value's own local time",
                            "examples": ["iso8601", "%m/%d/%Y", "%d %b %Y %H:%M"],
                        },
                        "parts": {
                            "type": "array",
                            "description": "Date features: the numbers the model takes from each date",
                            "items": {"type": "string", "enum": ["year", "month", "day", "dayofweek",
                                                                 "dayofyear", "hour", "minute"]},
                        },
                        "earliest": {"type": ["string", "null"], "description": "Date features: the "
                                     "earliest date in training, as written"},
                        "latest": {"type": ["string", "null"], "description": "Date features: the "
                                   "latest date in training, as written"},
                        "required": {"type": "boolean", "description": "The opposite of nullable"},
                        "nullable": {
                            "type": "boolean",
                            "description": "May be null or absent: the served pipeline takes it missing "
                            "(imputes a number; a missing category is a category of its own). False only "
                            "where the model cannot serve a missing value (e.g. recipe seed-a, trained on "
                            "complete rows only)",
                        },
                        "missing_in_training": {
                            "type": ["boolean", "null"],
                            "description": "Whether training rows had it missing (a missing value in a "
                            "request is then served without a warning); null: not recorded for this version",
                        },
                        "categories": {"type": "array", "items": {"type": "string"}},
                        "min": {"type": ["number", "null"]},
                        "max": {"type": ["number", "null"]},
                    },
                },
                "ModelDescription": {
                    "type": "object",
                    "required": ["name", "version", "task", "target", "features"],
                    "properties": {
                        "name": {"type": "string"},
                        "version": {"type": "integer", "minimum": 1},
                        "task": {"type": "string", "enum": ["classification", "regression"]},
                        "target": {"type": "string"},
                        "recipe": {"type": ["string", "null"]},
                        "primary_metric": {"type": ["string", "null"]},
                        "metrics": {"type": ["object", "null"]},
                        "baseline": {"type": ["object", "null"]},
                        "labels": {"type": ["array", "null"]},
                        "registered": {"type": ["string", "null"]},
                        "features": {"type": "array", "items": {"$ref": "#/components/schemas/Feature"}},
                        "ignored_columns": {
                            "type": ["array", "null"],
                            "description": "Columns of the training CSV that are not model inputs: a "
                            "request may carry them and they are ignored (null: not recorded for this "
                            "version; then only features are accepted)",
                            "items": {"$ref": "#/components/schemas/IgnoredColumn"},
                        },
                    },
                },
                "IgnoredColumn": {
                    "type": "object",
                    "required": ["name", "reason"],
                    "properties": {
                        "name": {"type": "string"},
                        "reason": {
                            "type": "string",
                            "description": "target, drop_columns, id_columns, id (unique per row) or not a model input",
                        },
                    },
                },
                "ModelList": {
                    "type": "object",
                    "required": ["models"],
                    "properties": {
                        "models": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name", "champion"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "champion": {"type": ["integer", "null"]},
                                },
                            },
                        }
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["message"],
                    "properties": {
                        "message": {"type": "string"},
                        "error_count": {
                            "type": "integer",
                            "description": f"How many problems there were, when more than the {MAX_LISTED_ERRORS} listed",
                        },
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["row", "field", "message"],
                                "properties": {
                                    "row": {"type": ["integer", "null"]},
                                    "field": {"type": ["string", "null"]},
                                    "message": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            }
        },
    }
