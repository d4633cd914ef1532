"""Feedback: the true values of served predictions, joined to the capture records by
(request_id, row) (issue #17's shared format).

Labels arrive two ways:

* ``POST /models/{name}/feedback`` with ``{"request_id": "…", "row": 0, "actual": <value>}`` or
  ``{"items": [{…}, …]}`` (at most :data:`MAX_ITEMS`), checked whole before anything is written,
  stored as one JSON-lines object ``feedback/<model>/dt=YYYY-MM-DD/<time>-<uuid>.jsonl`` of
  ``{"request_id", "row", "actual", "time", "caller"}``;
* a CSV with the header ``request_id,row,actual`` (``row`` optional, default 0) uploaded under
  ``feedback/<model>/`` (``stepml feedback NAME --file labels.csv`` checks it first).

The monitor reads both back (:func:`stepml.monitoring.load_feedback`). Standard library only.
"""

from __future__ import annotations

import csv
import io
import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any

from stepml import keys
from stepml.capture import timestamp
from stepml.errors import RequestError
from stepml.inputs import (
    MAX_INSTANCES,
    MAX_LISTED_ERRORS,
    MAX_VALUE_CHARS,
    is_unicode,
    quoted,
    shown,
)

#: Labels one request (or one CSV upload checked by the CLI) may carry.
MAX_ITEMS = 1000
MAX_CSV_ROWS = 1_000_000
#: The longest request id accepted (API Gateway's are 16 characters; a client's own may be longer).
MAX_REQUEST_ID_CHARS = 128
ITEM_FIELDS = ("request_id", "row", "actual")
CSV_HEADER = ("request_id", "row", "actual")


class _Problems:
    def __init__(self) -> None:
        self.listed: list[dict[str, Any]] = []
        self.total = 0

    def add(self, row: int | None, field: str, message: str) -> None:
        self.total += 1
        if len(self.listed) < MAX_LISTED_ERRORS:
            self.listed.append({"row": row, "field": field, "message": message})

    def raise_if_any(self, what: str) -> None:
        if self.total:
            first = self.listed[0]
            where = f"item {first['row']}: " if first["row"] is not None else ""
            more = f" (and {self.total - 1} more problem(s))" if self.total > 1 else ""
            raise RequestError(f"{what}: {where}'{first['field']}' {first['message']}{more}", status=422,
                               details=self.listed, total=self.total)


def _check_item(item: Any, index: int | None, problems: _Problems) -> dict[str, Any] | None:
    """One label, checked; problems are added (named by item index and field)."""
    if not isinstance(item, dict):
        problems.add(index, "item", f"must be an object {{\"request_id\", \"row\", \"actual\"}}, got {type(item).__name__}")
        return None
    for name in item:
        if name not in ITEM_FIELDS:
            problems.add(index, shown(str(name)), "unknown field: a label has request_id, row and actual")
    request_id = item.get("request_id")
    if not isinstance(request_id, str) or not request_id.strip():
        problems.add(index, "request_id", f"must be a non-empty string (the prediction's request id), got {quoted(request_id)}")
    elif len(request_id) > MAX_REQUEST_ID_CHARS or not is_unicode(request_id) or not request_id.isprintable():
        problems.add(index, "request_id", f"must be at most {MAX_REQUEST_ID_CHARS} printable characters")
    row = item.get("row", 0)
    if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < MAX_INSTANCES:
        problems.add(index, "row", f"must be a whole number from 0 to {MAX_INSTANCES - 1} (the record's "
                     f"position in the request), got {quoted(row)}")
    if "actual" not in item:
        problems.add(index, "actual", "is required: the true value (a class label or a number)")
    else:
        actual = item["actual"]
        if isinstance(actual, bool) or not isinstance(actual, int | float | str):
            problems.add(index, "actual", f"must be a class label (string) or a number, got {quoted(actual)}")
        elif isinstance(actual, float) and not math.isfinite(actual):
            problems.add(index, "actual", "must be a finite number")
        elif isinstance(actual, str) and (len(actual) > MAX_VALUE_CHARS or not is_unicode(actual)):
            problems.add(index, "actual", f"must be at most {MAX_VALUE_CHARS} characters of valid Unicode")
    return item


def parse_items(body: Any) -> list[dict[str, Any]]:
    """The labels of a feedback request body, every one checked (a 4xx names each problem)."""
    if not isinstance(body, dict):
        raise RequestError('the body must be a JSON object: {"request_id": …, "row": 0, "actual": …} '
                           'or {"items": [...]}')
    problems = _Problems()
    if "items" in body:
        if set(body) != {"items"}:
            raise RequestError("a batch is an object whose only key is 'items'")
        items = body["items"]
        if not isinstance(items, list) or not items:
            raise RequestError("'items' must be a non-empty list of labels")
        if len(items) > MAX_ITEMS:
            raise RequestError(f"'items' has {len(items)} labels; the limit is {MAX_ITEMS} per request")
        for index, item in enumerate(items):
            _check_item(item, index, problems)
    else:
        items = [body]
        _check_item(body, None, problems)
    problems.raise_if_any("feedback refused")
    return [{"request_id": item["request_id"], "row": item.get("row", 0), "actual": item["actual"]} for item in items]


def store_items(store: Any, model: str, items: list[dict[str, Any]], caller: str | None,
                now: datetime | None = None) -> str:
    """Write the checked labels as one JSON-lines object; returns its key."""
    now = now or datetime.now(UTC)
    when = timestamp(now)
    lines = "".join(json.dumps({**item, "time": when, "caller": caller}, ensure_ascii=False) + "\n" for item in items)
    # The id starts with the time, so a day's batches list in the order they arrived (the later label wins).
    key = keys.feedback_batch(model, now.strftime("%Y-%m-%d"), f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4()}")
    store.put_bytes(key, lines.encode("utf-8"), content_type="application/x-ndjson", if_none_match=True)
    return key


def check_csv(data: bytes, source: str = "labels.csv") -> int:
    """Check a bulk label file before it is uploaded; returns its number of labels. A problem is
    a :class:`RequestError` naming the file, line and column."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestError(f"{source} is not UTF-8 text: byte {exc.start} cannot be decoded") from None
    reader = csv.reader(io.StringIO(text))
    header = [name.strip() for name in next(reader, [])]
    if "request_id" not in header or "actual" not in header or not set(header) <= set(CSV_HEADER):
        raise RequestError(f"{source}: the header must be request_id,row,actual (row optional), got {','.join(header)!r}")
    count = 0
    for line, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise RequestError(f"{source} line {line}: {len(values)} values for {len(header)} columns")
        row = dict(zip(header, values, strict=True))
        if not row["request_id"].strip():
            raise RequestError(f"{source} line {line}: column request_id is empty")
        if row.get("row", "0").strip() and not row.get("row", "0").strip().isdigit():
            raise RequestError(f"{source} line {line}: column row must be a whole number, got {quoted(row['row'])}")
        if not row["actual"].strip():
            raise RequestError(f"{source} line {line}: column actual is empty")
        count += 1
        if count > MAX_CSV_ROWS:
            raise RequestError(f"{source}: more than {MAX_CSV_ROWS} labels; split the file")
    if not count:
        raise RequestError(f"{source}: no labels after the header")
    return count


def accept(store: Any, model: str, body: Any, caller: str | None) -> dict[str, Any]:
    """Check and store one feedback request's labels; what the API answers."""
    items = parse_items(body)
    store_items(store, model, items, caller)
    return {"model": model, "accepted": len(items)}


__all__ = ["MAX_ITEMS", "accept", "check_csv", "parse_items", "store_items"]
