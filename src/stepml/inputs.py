"""Decode and check prediction requests against a model's feature schema (pure Python).

A request is a single record ``{feature: value}`` or a batch ``{"instances": [record, ...]}``. A body
is a batch exactly when ``instances`` is its only key and its value is a list; any other object is one
record (so a model may have a feature named ``instances``: a record's values are never lists). Problems are
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
import reprlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stepml import cells, dateparts
from stepml.errors import RequestError

#: Largest batch one request may carry (documented in the API).
MAX_INSTANCES = 1000
#: Lambda's synchronous payload limit is 6 MB; API Gateway's body limit is lower still.
MAX_BODY_BYTES = 6 * 1024 * 1024
#: Fields one record may carry (more if the model has more features and ignored columns).
MAX_FIELDS = 1000
#: Characters a string value may have (more if one of the model's training categories is longer).
MAX_VALUE_CHARS = 1000
#: Problems a 422 lists one by one; the rest are counted (a response must stay under Lambda's 6 MB).
MAX_LISTED_ERRORS = 100
#: Characters of a value or field name quoted back in a message.
QUOTED_CHARS = 80
#: The largest version number a request may name.
MAX_VERSION = 999_999_999
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


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(f"the request body has the key {shown(key)!r} twice in one object")
            seen.add(key)
    return found


#: One decoder for every request: ``json.loads(..., parse_constant=...)`` would build a new one each call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
#: The same, refusing an object with a key twice (slower: only run when a body may have one).
_STRICT_DECODER = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_unique_keys)


def _shallow_keys(value: Any) -> int:
    """Keys of a record, or of a batch and its records; -1 for any other shape."""
    if type(value) is not dict:
        return -1
    count = len(value)
    records = value.get("instances")
    if count == 1 and type(records) is list:
        for record in records:
            if type(record) is dict:
                count += len(record)
    return count


#: Quotes a value back in a message, shortened: a 5 MB string or a deeply nested list stays a few words.
_QUOTE = reprlib.Repr()  # set one by one: Repr takes these as arguments only from Python 3.12
_QUOTE.maxlevel, _QUOTE.maxstring, _QUOTE.maxother, _QUOTE.maxlist, _QUOTE.maxdict = 2, QUOTED_CHARS, QUOTED_CHARS, 4, 4


def quoted(value: Any) -> str:
    """``repr(value)``, shortened to about :data:`QUOTED_CHARS` characters."""
    return _QUOTE.repr(value)


def shown(text: str) -> str:
    """``text`` itself, or its first :data:`QUOTED_CHARS` characters with a count of the rest."""
    if len(text) <= QUOTED_CHARS:
        return text
    return f"{text[:QUOTED_CHARS]}... ({len(text)} characters)"


def parse_body(body: str | bytes | None) -> Any:
    """The JSON body; malformed JSON, NaN and Infinity are refused with a readable message.

    The size is checked before any parsing. Nesting is bounded by the parser itself: a body nested
    deeper than it recurses (about a thousand levels) is a 400, and anything nested below a
    record's values is refused by the field checks (a value is a number, a string or null).
    """
    size = 0 if body is None else len(body.encode() if isinstance(body, str) else body)
    if size > MAX_BODY_BYTES:
        raise RequestError(f"the request body is {size} bytes; the limit is {MAX_BODY_BYTES}", status=413)
    if body is None or not body.strip():
        raise RequestError("the request body is empty: send a JSON object")
    try:
        text = body if isinstance(body, str) else body.decode("utf-8")
        value = _DECODER.decode(text)
        # A key sent twice would silently keep its last value. When every ':' ends a key (a '"'
        # just before it) and they are as many as the keys parsed, no key came twice; otherwise
        # parse again, checking each object (a hook per object: only when a body may need it).
        colons = text.count(":")
        if colons != text.count('":') or colons != _shallow_keys(value):
            value = _STRICT_DECODER.decode(text)
        return value
    except _DuplicateKey as exc:
        raise RequestError(str(exc)) from exc
    except RecursionError as exc:
        raise RequestError(
            "the request body is nested too deeply to parse: a record is a flat JSON object"
        ) from exc
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise RequestError(f"the request body is not valid JSON: {shown(str(exc))}") from exc


def parse_version(value: str | None, name: str = "version") -> int | None:
    """A version number from a query or path parameter (None when absent).

    ASCII digits only: ``str.isdigit`` is also true of ``²`` (which ``int()`` refuses) and of other
    scripts' digits, and a version is at most :data:`MAX_VERSION`.
    """
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > len(str(MAX_VERSION)) or int(value) < 1:
        raise RequestError(
            f"{name} must be a positive whole number, got {quoted(value)}: ASCII digits, 1 to {MAX_VERSION}"
        )
    return int(value)


def is_batch(payload: Any) -> bool:
    """Whether a body is a batch: an object whose only key is ``instances``, holding a list."""
    return isinstance(payload, dict) and len(payload) == 1 and isinstance(payload.get("instances"), list)


def records_from(payload: Any) -> list[Any]:
    """The records of a request (one record or a batch, see :func:`is_batch`), before field checks."""
    if is_batch(payload):
        records = payload["instances"]
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


#: The hint on an unknown field named ``instances`` (a batch is that key alone, holding a list).
BATCH_HINT = "unknown field (a batch is {\"instances\": [record, ...]} with no other key)"


def is_unicode(text: str) -> bool:
    """Whether ``text`` can be encoded (JSON's ``\\ud800`` escapes decode to lone surrogates, which cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def nullable(spec: Mapping[str, Any]) -> bool:
    """Whether the served model takes this feature missing (schemas before ``nullable``: not required)."""
    return bool(spec.get("nullable", not spec.get("required", True)))


@dataclass(frozen=True)
class InputContract:
    """What one model version accepts, prepared once when it is loaded (the check runs per request).

    ``fields``: feature name -> its schema entry (``kind``, ``nullable``, ``missing_in_training``,
    ``categories`` or ``min``/``max``). ``ignored``: columns of the training CSV that are not model
    inputs - accepted, and listed once in the row's warnings; any other unknown column is refused.
    ``refusal``: the message for a missing value the model cannot serve. ``max_fields`` and
    ``max_chars``: the most fields a record and characters a string value may have.
    """

    fields: Mapping[str, Mapping[str, Any]]
    ignored: frozenset[str] = frozenset()
    refusal: str = MISSING_REQUIRED
    max_fields: int = MAX_FIELDS
    max_chars: int = MAX_VALUE_CHARS

    @classmethod
    def build(
        cls, schema: Iterable[Mapping[str, Any]], ignored: Iterable[str] = (), refusal: str = MISSING_REQUIRED
    ) -> InputContract:
        fields = {str(spec["name"]): _prepared(spec) for spec in schema}
        unused = frozenset(ignored) - set(fields)
        longest = max((len(str(c)) for spec in fields.values() for c in spec.get("categories") or ()), default=0)
        return cls(
            fields=fields,
            ignored=unused,
            refusal=refusal,
            max_fields=max(MAX_FIELDS, len(fields) + len(unused)),
            max_chars=max(MAX_VALUE_CHARS, longest),
        )


class _Problems:
    """The problems of one request: the first :data:`MAX_LISTED_ERRORS` listed, all counted."""

    def __init__(self) -> None:
        self.listed: list[dict[str, Any]] = []
        self.count = 0

    def add(self, row: int, field: str | None, message: str) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED_ERRORS:
            self.listed.append({"row": row, "field": None if field is None else shown(field), "message": message})

    def raise_if_any(self) -> None:
        if not self.count:
            return
        summary = "; ".join(
            f"row {e['row']}" + (f" field {e['field']!r}" if e["field"] is not None else "") + f": {e['message']}"
            for e in self.listed[:10]
        )
        more = f" (and {self.count - 10} more)" if self.count > 10 else ""
        raise RequestError(f"invalid input: {summary}{more}", status=422, details=self.listed, total=self.count)


#: How training writes a true/false column's values (pandas reads true, True and TRUE as booleans).
BOOLEAN_CATEGORIES = {"true": "True", "false": "False"}


def _prepared(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A schema entry as the per-request check reads it: ``nullable`` resolved, and for a categorical
    feature its categories as a set (``category_set``) and whether it is a true/false column
    (``boolean``), and the categories written with spaces around them by their trimmed text
    (``padded``: a model trained before uploads were read trimmed) - worked out once per loaded
    version, not per value."""
    categories = frozenset(spec.get("categories") or ())
    return {
        **spec,
        "nullable": nullable(spec),
        "category_set": categories,
        "boolean": bool(categories) and categories <= set(BOOLEAN_CATEGORIES.values()),
        "padded": {str(c).strip(): c for c in categories if isinstance(c, str) and c.strip() != c},
    }


def _boolean_category(spec: Mapping[str, Any], value: Any) -> str | None:
    """A true/false feature's value as training saw it: JSON ``true`` and the CSV's spellings
    (``"true"``, ``"TRUE"``, ``"True"``) all become the category ``"True"``; None when ``spec`` is not a
    boolean column (see :func:`_prepared`) or ``value`` is not a boolean."""
    if not spec["boolean"]:
        return None
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return BOOLEAN_CATEGORIES.get(value.strip().lower())
    return None


#: The longest string read as a number (a longer one is refused as not a number, unread).
MAX_NUMBER_CHARS = 100


def marks_missing(text: str, categories: Collection[str] = frozenset()) -> bool:
    """Whether a request's string value is one of training's missing markers
    (:data:`stepml.cells.MISSING_MARKERS`: ``"NA"``, ``"n/a"``, ``"?"``, ``""``, spaces around it
    ignored), read as a JSON null - unless it is one of the feature's ``categories`` (a version
    trained before that spelling was a marker knows it as a category)."""
    if not cells.is_missing_marker(text):
        return False
    return not (text in categories or text.strip() in categories)


def with_stripped_names(record: Mapping[str, Any]) -> dict[str, Any]:
    """A served record's fields by their names without the spaces around them, as the API matched
    them (a name sent exactly as the model's wins): what monitoring reads from a capture."""
    return {**{str(name).strip(): value for name, value in record.items()}, **record}


def _stripped_names(
    record: dict[str, Any], extra: set[str], known: Iterable[str], row: int, problems: _Problems
) -> tuple[dict[str, Any], set[str]]:
    """``record`` with each field name that is unknown as sent but known without the spaces around
    it (``"Lot Size "``: training strips a header's names) under its stripped name, and the names
    still unknown. A name sent twice so (``"x"`` and ``" x"``) is a problem of the row."""
    known = set(known)
    renamed = {name: name.strip() for name in extra if name.strip() != name and name.strip() in known}
    if not renamed:
        return record, extra
    result = {renamed.get(name, name): value for name, value in record.items()}
    for name, stripped in renamed.items():
        if stripped in record or sum(1 for other in renamed.values() if other == stripped) > 1:
            problems.add(row, name, f"field {shown(stripped)!r} is sent twice (names are read without the spaces "
                                    "around them)")
    return result, extra - renamed.keys()


def check_records(
    records: list[Any], schema: InputContract | list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """Rows of checked values in schema order, and each row's warnings; errors raise 422.

    ``schema``: the model's :class:`InputContract` (or a bare feature schema, nothing ignored).
    A record with more fields than the contract's ``max_fields`` is refused whole (413) before
    any field is looked at.
    """
    contract = schema if isinstance(schema, InputContract) else InputContract.build(schema)
    fields = contract.fields
    ignored = contract.ignored
    problems = _Problems()
    rows: list[dict[str, Any]] = []
    warnings: list[list[str]] = []
    for index, record in enumerate(records):
        row_warnings: list[str] = []
        if not isinstance(record, dict):
            problems.add(index, None, f"a record must be a JSON object, got {type(record).__name__}")
            rows.append({})
            warnings.append(row_warnings)
            continue
        if len(record) > contract.max_fields:
            raise RequestError(
                f"row {index} has {len(record)} fields; the limit is {contract.max_fields} "
                f"(the model has {len(fields)} features)",
                status=413,
            )
        extra = record.keys() - fields.keys()
        if extra:
            record, extra = _stripped_names(record, extra, fields.keys() | ignored, index, problems)
            for name in sorted(extra - ignored):
                problems.add(index, name, BATCH_HINT if name == "instances" else "unknown field")
            unused = sorted(extra & ignored)
            if unused:
                row_warnings.append(f"ignored column(s) the model does not use: {', '.join(unused)}")
        row: dict[str, Any] = {}
        for name, spec in fields.items():
            value = record.get(name)
            if type(value) is str and value not in spec["category_set"] and marks_missing(value, spec["category_set"]):
                value = None  # "NA", "?", "": missing, as training read the cell
            if value is None:
                if not spec["nullable"]:
                    problems.add(index, name, contract.refusal)
                elif spec.get("missing_in_training") is False:
                    row_warnings.append(f"{name} is missing and {NEVER_MISSING}")
                row[name] = None
                continue
            if spec["kind"] == "date":
                if not isinstance(value, str):
                    problems.add(index, name, f"expected a date string in the format "
                                 f"{dateparts.describe(spec['format'])}, got {type(value).__name__} {quoted(value)}")
                    continue
                derived = dateparts.parts(value, spec["format"], spec["parts"])
                if math.isnan(derived[0]):  # as in training: a date its format cannot read is missing
                    unreadable = f"{name}={quoted(value)} {NOT_A_DATE} {dateparts.describe(spec['format'])}"
                    if not spec["nullable"]:
                        problems.add(index, name, f"{unreadable}; {contract.refusal}")
                        continue
                    row_warnings.append(f"{unreadable}: served as a missing date")
                    row[name] = None
                    continue
                row[name] = derived
            elif spec["kind"] == "numeric":
                written: Any = value
                if type(value) is str and len(value) <= MAX_NUMBER_CHARS:
                    # a cell as the CSV writes it: "13.14", "$1,234", "45.2%" (as training read it)
                    written, value = value.strip(), cells.number(value)
                    if value is None:
                        problems.add(index, name, f"expected a number, got str {quoted(record.get(name))}")
                        continue
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    problems.add(index, name, f"expected a number, got {type(value).__name__} {quoted(value)}")
                    continue
                try:
                    finite = math.isfinite(value)
                except OverflowError:  # a whole number too large for a float
                    finite = False
                if not finite:
                    problems.add(index, name, "must be a finite number")
                    continue
                low, high = spec.get("min"), spec.get("max")
                if low is not None and high is not None and not low <= value <= high:
                    row_warnings.append(f"{name}={written} is outside the training range [{low}, {high}]")
                row[name] = float(value)
            else:
                text = _boolean_category(spec, value)
                if text is None and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
                    problems.add(index, name, f"expected a string, got {type(value).__name__}")
                    continue
                if text is None:
                    # without the spaces around it, as training reads a CSV (columns.trimmed_text);
                    # a model trained before that knows some categories with their spaces: those
                    written = str(value)
                    text = written.strip()
                    if spec["category_set"] and text not in spec["category_set"]:
                        text = spec["padded"].get(text, written if written in spec["category_set"] else text)
                if len(text) > contract.max_chars:
                    problems.add(index, name, f"a string of {len(text)} characters; the limit is {contract.max_chars}")
                    continue
                if not text.isascii() and not is_unicode(text):
                    problems.add(index, name, "not valid Unicode text: it holds a lone surrogate (\\ud800-\\udfff)")
                    continue
                if spec["category_set"] and text not in spec["category_set"]:
                    row_warnings.append(f"{name}={quoted(text)} {UNSEEN_CATEGORY}")
                row[name] = text
        rows.append(row)
        warnings.append(row_warnings)
    problems.raise_if_any()
    return rows, warnings
