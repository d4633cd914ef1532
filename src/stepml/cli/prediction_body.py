"""The body of ``stepml predict --file PATH``: a JSON body, a JSON list of records, or a CSV.

A batch of rows does not fit the command line (150 wide rows are ~220 KB; the shell refuses an
argument that long), so ``--file`` reads it from a file, or from stdin (``-``). A CSV's rows become
records as the CSV writes them: every value the text of its cell, an empty cell null. The API
reads numbers written as text as numbers, and null as missing, as training read the upload.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import click

#: ``--file -``: the body comes from stdin.
STDIN = "-"


def read_prediction_body(path: str) -> Any:
    """The request body held by ``path`` (``-``: stdin), ready to POST.

    ``*.csv`` is read as a CSV, ``*.json`` as JSON; another name (or stdin) as JSON when its first
    character is ``{`` or ``[``, else as a CSV. A JSON list of records becomes ``{"instances": [...]}``;
    a JSON object is sent as it is (one record, or ``{"instances": [...]}``). Raises
    :class:`click.BadParameter` naming the file when it cannot be read or holds no body.
    """
    source = "stdin" if path == STDIN else path
    try:
        data = sys.stdin.buffer.read() if path == STDIN else Path(path).read_bytes()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {source}: {exc.strerror or exc}", param_hint="--file") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise click.BadParameter(f"{source} is not UTF-8 text (byte {exc.start}): save it as UTF-8",
                                 param_hint="--file") from exc
    lower = path.lower()
    as_json = lower.endswith(".json") or (not lower.endswith(".csv") and text.lstrip()[:1] in ("{", "["))
    return _json_body(text, source) if as_json else _csv_body(text, source)


def _json_body(text: str, source: str) -> Any:
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{source} is not valid JSON: {exc}", param_hint="--file") from exc
    if isinstance(body, list):
        return {"instances": body}
    if not isinstance(body, dict):
        raise click.BadParameter(f"{source} holds a JSON {type(body).__name__}: give a record {{feature: value}}, "
                                 'a list of records or {"instances": [...]}', param_hint="--file")
    return body


def _csv_body(text: str, source: str) -> dict[str, list[dict[str, str | None]]]:
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise click.BadParameter(f"{source} is not a readable CSV: {exc}", param_hint="--file") from exc
    rows = [row for row in rows if row]  # blank lines hold no record
    if not rows:
        raise click.BadParameter(f"{source} is empty: give a CSV with a header row and rows to predict",
                                 param_hint="--file")
    header, records = rows[0], rows[1:]
    if not records:
        raise click.BadParameter(f"{source} has a header but no rows to predict", param_hint="--file")
    width = len(header)
    for number, row in enumerate(records, start=1):
        if len(row) != width:
            raise click.BadParameter(f"{source} row {number} (after the header) has {len(row)} fields, "
                                     f"the header {width}", param_hint="--file")
    return {"instances": [{name: value if value != "" else None for name, value in zip(header, row, strict=True)}
                          for row in records]}
