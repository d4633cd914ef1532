"""Decode and check prediction requests against a model's feature schema (pure Python).

A request is a single record ``{feature: value}`` or ``{"instances": [record, ...]}``. Problems are
collected for every row and field before anything is refused, so the caller sees all of them at
once; values that can still be served (an unseen category, a number outside the training range, a
missing value the model fills although that feature was never missing in training, a column of the
training CSV that the model does not use, a date its column's format cannot read - served as a
missing date, as training read such a value) become per-row warnings instead.

A date column arrives as its string, as written in the CSV; a checked row holds its parts
(:func:`stepml.dateparts.parts`, the function training used), which the model takes.

What a model accepts is an :class:`InputContract`, prepared once per loaded model from its feature
schema: a feature whose ``nullable`` is true may be null or absent; any other missing value is
refused with the contract's ``refusal`` (saying why, e.g. the recipe trains on complete rows only).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stepml import dateparts
from stepml.errors import RequestError

#: Largest batch one request may carry (documented in the API).
MAX_INSTANCES = 1000
#: Lambda's synchronous payload limit is 6 MB; API Gateway's body limit is lower still.
MAX_BODY_BYTES = 6 * 1024 * 1024
#: How a row's warning about a category unseen in training ends (serving counts them).
UNSEEN_CATEGORY = "was not seen in training"
#: How a row's warning about a missing value that training never had ends.
NEVER_MISSING = "was never missing in training"
#: How a row's warning (or error) about a date its column's format cannot read goes on.
NOT_A_DATE = "is not a date in the format the model was trained on:"
#: The refusal of a missing value when the schema says no more than that the feature is required.
MISSING_REQUIRED = "missing required field"


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


#: One decoder for every request: ``json.loads(..., parse_constant=...)`` would build a new one each call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_body(body: str | bytes | None) -> Any:
    """The JSON body; malformed JSON, NaN and Infinity are refused with a readable message."""
    size = 0 if body is None else len(body.encode() if isinstance(body, str) else body)
    if size > MAX_BODY_BYTES:
        raise RequestError(f"the request body is {size} bytes; the limit is {MAX_BODY_BYTES}", status=413)
    if body is None or not body.strip():
        raise RequestError("the request body is empty: send a JSON object")
    try:
        text = body if isinstance(body, str) else body.decode("utf-8")
        return _DECODER.decode(text)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise RequestError(f"the request body is not valid JSON: {exc}") from exc


def records_from(payload: Any) -> list[Any]:
    """The records of a request (one record or ``instances``), before field checks."""
    if isinstance(payload, dict) and "instances" in payload:
        extra = sorted(set(payload) - {"instances"})
        if extra:
            raise RequestError(f"unknown top-level field(s) next to 'instances': {', '.join(extra)}")
        records = payload["instances"]
        if not isinstance(records, list):
            raise RequestError("'instances' must be a list of records")
        if not records:
            raise RequestError("'instances' is empty: send at least one record")
        if len(records) > MAX_INSTANCES:
            raise RequestError(
                f"'instances' has {len(records)} records; the limit is {MAX_INSTANCES} per request", status=413
            )
        return records
    if isinstance(payload, dict):
        return [payload]
    raise RequestError("the body must be a JSON object: a record or {\"instances\": [...]}")


def nullable(spec: Mapping[str, Any]) -> bool:
    """Whether the served model takes this feature missing (schemas before ``nullable``: not required)."""
    return bool(spec.get("nullable", not spec.get("required", True)))


@dataclass(frozen=True)
class InputContract:
    """What one model version accepts, prepared once when it is loaded (the check runs per request).

    ``fields``: feature name -> its schema entry (``kind``, ``nullable``, ``missing_in_training``,
    ``categories`` or ``min``/``max``). ``ignored``: columns of the training CSV that are not model
    inputs - accepted, and listed once in the row's warnings; any other unknown column is refused.
    ``refusal``: the message for a missing value the model cannot serve.
    """

    fields: Mapping[str, Mapping[str, Any]]
    ignored: frozenset[str] = frozenset()
    refusal: str = MISSING_REQUIRED

    @classmethod
    def build(
        cls, schema: Iterable[Mapping[str, Any]], ignored: Iterable[str] = (), refusal: str = MISSING_REQUIRED
    ) -> InputContract:
        fields = {str(spec["name"]): {**spec, "nullable": nullable(spec)} for spec in schema}
        return cls(fields=fields, ignored=frozenset(ignored) - set(fields), refusal=refusal)


def check_records(
    records: list[Any], schema: InputContract | list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """Rows of checked values in schema order, and each row's warnings; errors raise 422.

    ``schema``: the model's :class:`InputContract` (or a bare feature schema, nothing ignored).
    """
    contract = schema if isinstance(schema, InputContract) else InputContract.build(schema)
    fields = contract.fields
    ignored = contract.ignored
    errors: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    warnings: list[list[str]] = []
    for index, record in enumerate(records):
        row_warnings: list[str] = []
        if not isinstance(record, dict):
            errors.append({"row": index, "field": None, "message": "a record must be a JSON object"})
            rows.append({})
            warnings.append(row_warnings)
            continue
        extra = record.keys() - fields.keys()
        if extra:
            for name in sorted(extra - ignored):
                errors.append({"row": index, "field": name, "message": "unknown field"})
            unused = sorted(extra & ignored)
            if unused:
                row_warnings.append(f"ignored column(s) the model does not use: {', '.join(unused)}")
        row: dict[str, Any] = {}
        for name, spec in fields.items():
            value = record.get(name)
            if value is None:
                if not spec["nullable"]:
                    errors.append({"row": index, "field": name, "message": contract.refusal})
                elif spec.get("missing_in_training") is False:
                    row_warnings.append(f"{name} is missing and {NEVER_MISSING}")
                row[name] = None
                continue
            if spec["kind"] == "date":
                if not isinstance(value, str):
                    errors.append({"row": index, "field": name, "message": f"expected a date string in the format "
                                   f"{dateparts.describe(spec['format'])}, got {type(value).__name__} {value!r}"})
                    continue
                derived = dateparts.parts(value, spec["format"], spec["parts"])
                if math.isnan(derived[0]):  # as in training: a date its format cannot read is missing
                    unreadable = f"{name}={value!r} {NOT_A_DATE} {dateparts.describe(spec['format'])}"
                    if not spec["nullable"]:
                        errors.append({"row": index, "field": name, "message": f"{unreadable}; {contract.refusal}"})
                        continue
                    row_warnings.append(f"{unreadable}: served as a missing date")
                    row[name] = None
                    continue
                row[name] = derived
            elif spec["kind"] == "numeric":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    errors.append({"row": index, "field": name,
                                   "message": f"expected a number, got {type(value).__name__} {value!r}"})
                    continue
                try:
                    finite = math.isfinite(value)
                except OverflowError:  # a whole number too large for a float
                    finite = False
                if not finite:
                    errors.append({"row": index, "field": name, "message": "must be a finite number"})
                    continue
                low, high = spec.get("min"), spec.get("max")
                if low is not None and high is not None and not low <= value <= high:
                    row_warnings.append(f"{name}={value} is outside the training range [{low}, {high}]")
                row[name] = float(value)
            else:
                if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                    errors.append({"row": index, "field": name,
                                   "message": f"expected a string, got {type(value).__name__}"})
                    continue
                text = str(value)
                if spec.get("categories") and text not in spec["categories"]:
                    row_warnings.append(f"{name}={text!r} {UNSEEN_CATEGORY}")
                row[name] = text
        rows.append(row)
        warnings.append(row_warnings)
    if errors:
        summary = "; ".join(
            f"row {e['row']}" + (f" field {e['field']!r}" if e["field"] else "") + f": {e['message']}"
            for e in errors[:10]
        )
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        raise RequestError(f"invalid input: {summary}{more}", status=422, details=errors)
    return rows, warnings
