"""Inference capture: one JSON log line per prediction request, the audit trail of what was served.

The prediction function writes the record to stdout as a single line; CloudWatch Logs hands the
lines that carry ``"stepml_capture"`` to a Firehose delivery stream (a subscription filter), which
writes them to ``capture/<model>/dt=YYYY-MM-DD/`` in the data bucket (template.yaml). No S3 call
is made inside the request: building the line costs one ``orjson.dumps`` (~2 us for a row; the
standard library's ``json`` took ~17 us, a tenth of the warm request).

What is kept follows the version's ``capture`` setting (:data:`MODES`, from the dataset config,
carried in the version's ``meta.json``):

``full``    the rows as sent, the outputs, the probabilities
``hashed``  instead of the rows, the SHA-256 of each row's canonical JSON (:func:`row_hash`); the
            warnings and error messages, which quote input values, are reduced to counts
``off``     no record at all

The record's fields are the shared capture format (issue #17); :func:`read_records` reads a
delivered file back (plain or gzip-compressed newline-delimited JSON).

The standard library and orjson only: the inference function's cold start imports this module.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import orjson

from stepml.errors import DataError

#: The schema version every record carries under this key; a line without it is not a capture.
MARKER = "stepml_capture"
SCHEMA_VERSION = 1
CaptureMode = Literal["full", "hashed", "off"]
MODES: tuple[str, ...] = get_args(CaptureMode)
#: The mode of a version whose config names none (and of versions trained before capture existed).
DEFAULT_MODE: CaptureMode = "full"
#: CloudWatch Logs keeps at most 256 KB of one log event (Lambda truncates a longer line, and a
#: truncated line is no JSON): a record above this keeps row hashes instead of the rows, then
#: drops the probabilities, and says so in its ``warnings``.
MAX_LINE_BYTES = 250_000


def mode_of(meta: Mapping[str, Any]) -> CaptureMode:
    """The capture mode of a registered version (its ``meta.json``)."""
    mode = (meta.get("config") or {}).get("capture", DEFAULT_MODE)
    return mode if mode in MODES else DEFAULT_MODE


def caller_of(event: Mapping[str, Any]) -> str | None:
    """Who called, as API Gateway authorized them: an IAM ARN (SigV4) or ``jwt:<sub>`` (JWT API)."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    iam = authorizer.get("iam") or {}
    if iam.get("userArn"):
        return str(iam["userArn"])
    sub = ((authorizer.get("jwt") or {}).get("claims") or {}).get("sub")
    return f"jwt:{sub}" if sub else None


def canonical_json(row: Any) -> str:
    """One row as canonical JSON: keys sorted, no spaces, non-ASCII kept as UTF-8."""
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def row_hash(row: Any) -> str:
    """The SHA-256 (hex) of a row's canonical JSON: equal rows hash equal, whatever their key order."""
    return hashlib.sha256(canonical_json(row).encode("utf-8")).hexdigest()


#: The formatted second of the last :func:`timestamp` (formatting a date costs ~5-20 us; a warm
#: function serves many requests a second).
_second: tuple[int, str] = (-1, "")


def timestamp(now: datetime | None = None) -> str:
    """UTC, to the millisecond, as the capture format writes it: ``2026-11-26T18:40:01.123Z``."""
    global _second
    if now is not None:
        return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    clock = time.time()
    whole = int(clock)
    if _second[0] != whole:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(whole)))
    return f"{_second[1]}{int((clock - whole) * 1000):03d}Z"


def record(
    *,
    event: Mapping[str, Any],
    model: str,
    version: int,
    alias: str | None,
    task: str,
    mode: CaptureMode,
    rows: list[Any] | None,
    result: Mapping[str, Any] | None,
    latency_ms: float,
    status: int,
    error: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The capture record of one request (``mode`` full or hashed). ``rows``: the records as sent
    (None when the body could not be read); ``result``: the prediction (None for a failed request)."""
    per_row = (result or {}).get("warnings") or []
    if mode == "hashed":
        # Warnings and error messages quote the values they are about: hashed keeps neither.
        warnings = by_rows([[f"{len(row)} warning(s), not kept in hashed mode (they quote input values)"]
                            if row else [] for row in per_row])
        error = None if error is None else f"HTTP {status}: message not kept in hashed mode (it may quote input values)"
    else:
        warnings = by_rows(per_row)
    out: dict[str, Any] = {
        MARKER: SCHEMA_VERSION,
        "time": timestamp(now),
        "request_id": (event.get("requestContext") or {}).get("requestId"),
        "caller": caller_of(event),
        "model": model,
        "version": version,
        "alias": alias,
        "task": task,
        "mode": mode,
        "inputs": rows if mode == "full" and rows is not None else None,
        "input_hashes": [row_hash(row) for row in rows] if mode == "hashed" and rows is not None else None,
        "outputs": list((result or {}).get("predictions") or []),
        "probabilities": (result or {}).get("probabilities"),
        "warnings": warnings,
        "latency_ms": round(latency_ms, 3),
        "status": status,
    }
    if error is not None:
        out["error"] = error
    return out


def by_rows(per_row: list[list[str]]) -> list[str]:
    """Each distinct warning once, after the rows that had it (``row 3: ...``, ``rows 0-199, 205:
    ...``), in the order first seen: a batch whose every row sends the target is one line, not one
    per row."""
    rows_of: dict[str, list[int]] = {}
    for index, warnings in enumerate(per_row):
        for warning in warnings:
            rows_of.setdefault(warning, []).append(index)
    return [f"{row_span(indices)}: {warning}" for warning, indices in rows_of.items()]


def row_span(indices: list[int]) -> str:
    """Ascending row indices as ``row 4`` or ``rows 0-2, 7`` (runs of consecutive rows joined)."""
    if len(indices) == 1:
        return f"row {indices[0]}"
    runs: list[list[int]] = []
    for index in indices:
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return "rows " + ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _dumps(capture: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(capture, default=str)
    except TypeError:  # orjson refuses integers beyond 64 bits, which a request may carry
        return json.dumps(capture, separators=(",", ":"), default=str).encode("utf-8")


def line(capture: dict[str, Any]) -> str:
    """The record as one log line, bounded by :data:`MAX_LINE_BYTES` (see there)."""
    text = _dumps(capture)
    if len(text) <= MAX_LINE_BYTES:
        return text.decode("utf-8")
    if capture.get("inputs") is not None:
        capture = {**capture, "mode": "hashed", "input_hashes": [row_hash(row) for row in capture["inputs"]],
                   "inputs": None,
                   "warnings": [*capture["warnings"], "inputs too large to capture: stored as row hashes"]}
        text = _dumps(capture)
        if len(text) <= MAX_LINE_BYTES:
            return text.decode("utf-8")
    capture = {**capture, "probabilities": None,
               "warnings": [*capture["warnings"], "probabilities too large to capture: dropped"]}
    return _dumps(capture).decode("utf-8")


def read_records(data: bytes, location: str = "capture file",
                 problems: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """The capture records of one delivered file: newline-delimited JSON, gzip-compressed or not
    (by its magic number); other records are skipped. A line that is not JSON is skipped too and,
    when ``problems`` is given, named there (``<location> line N: not JSON``); a gzip file that
    cannot be read raises DataError naming ``location``."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"{location}: not a readable gzip file ({exc})") from None
    for number, raw in enumerate(data.splitlines(), start=1):
        text = raw.strip()
        if not text:
            continue
        try:
            value = json.loads(text)
        except ValueError:
            if problems is not None:
                problems.append(f"{location} line {number}: not JSON")
            continue
        if isinstance(value, dict) and value.get(MARKER):
            yield value


__all__ = ["DEFAULT_MODE", "MARKER", "MODES", "CaptureMode", "caller_of", "line", "mode_of", "read_records",
           "record", "row_hash"]
