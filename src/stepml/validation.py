"""Read an uploaded CSV and decide whether it can be trained on.

Blocking problems raise :class:`~stepml.errors.DataError` with a message naming the file and the
column or line; everything else becomes a warning in the validation report.

The blocking rules are pandera checks (:func:`blocking_schema`), run lazily so that one report
lists every failure; their failure cases are turned into readable sentences. The rules that only
warn (constant, high-cardinality and incomplete columns, duplicate rows) are counted with
vectorised pandas instead: pandera would build one failure-case row per duplicate row or missing
cell, which measured 40x the CSV's size in memory (and 70 s) on an upload with many duplicate rows.

Id columns: integers or text with a different value in every row (row numbers, keys) are left out
of training by default (:func:`stepml.columns.is_identifier`, role ``id``, with a warning that says why); the
config's ``keep_columns`` brings one back.

Date columns: text columns whose values (nearly) all read with one date format (role ``date``) are
trained on as numeric parts (year, month, day, day of week, day of year; hour and minute when the
values carry a time): :mod:`stepml.dateparts` chooses the format and derives the parts, for training
and serving alike. The report records the format and the parts per date column.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from stepml import dateparts
from stepml.columns import (
    MISSING_MARKERS,
    as_numbers,
    column_kind,
    date_columns,
    date_format,
    formatted_numbers,
    identifier_columns,
    is_identifier,
    numbers_expected,
    trimmed_text,
)
from stepml.config import IMBALANCED_METRIC, MINORITY_SHARE, DatasetConfig
from stepml.errors import ConfigError, DataError, listing

#: A target with at most this many distinct values is a class label (unless config says otherwise).
MAX_CLASSES = 20
#: ...and when those are more than this many whole numbers, the report says they may be counts.
MANY_NUMBER_CLASSES = 10
#: More distinct values than this in a text feature is worth a warning (each becomes a code).
HIGH_CARDINALITY = 100
#: How many example rows an error message quotes.
EXAMPLES = 5


#: Byte-order marks and the encodings they announce (longest first: UTF-32's starts like UTF-16's).
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8 with a byte-order mark"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)
#: Files that are not text at all, by their first bytes, and what to do instead.
NOT_TEXT = (
    (b"\x1f\x8b", "gzip-compressed: decompress it and upload the .csv"),
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook is one): save or export it as CSV"),
    (b"%PDF", "a PDF document: export the table as CSV"),
)
#: A valid UTF-8 sequence of two to four bytes: text in a legacy encoding seldom contains one.
UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
CONVERT = "save it as UTF-8 (Excel: CSV UTF-8; iconv -f <encoding> -t UTF-8)"


#: The csv module (used for the header and for rows wider than it) refuses fields over 128 K
#: characters by default; pandas reads any. Raised, once, so the two agree on what is a CSV.
csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))


def _utf8_error(data: bytes, chunk: int = 1 << 20) -> int | None:
    """Offset of the first byte that is not UTF-8, or None; decodes in chunks (no full copy)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    for offset in range(0, len(data), chunk):
        try:
            decoder.decode(data[offset : offset + chunk], final=offset + chunk >= len(data))
        except UnicodeDecodeError as exc:
            return offset + exc.start
    return None


def detect_encoding(data: bytes, source: str) -> tuple[str, str | None]:
    """The codec that decodes ``data`` and a note for the report when it is not plain UTF-8.

    UTF-8 (with or without a byte-order mark), UTF-16/32 with a byte-order mark, and Windows-1252
    or Latin-1 (a legacy spreadsheet export) are decoded; anything else is refused, saying what
    was found and how to convert it.
    """
    for bom, codec, name in BOMS:
        if data.startswith(bom):
            return codec, None if codec == "utf-8-sig" else f"{source} is {name}: decoded as such"
    for magic, what in NOT_TEXT:
        if data.startswith(magic):
            raise DataError(f"{source} is not a CSV file: it is {what}")
    head = data[:65536]
    if b"\x00" in head:
        odd, even = head[1::2], head[0::2]
        if odd.count(0) > 0.4 * len(odd) or even.count(0) > 0.4 * len(even):
            raise DataError(
                f"{source} looks like UTF-16 text without a byte-order mark, which cannot be told "
                f"apart reliably: {CONVERT.replace('<encoding>', 'UTF-16LE')}"
            )
        raise DataError(f"{source} is not a CSV file: it contains binary data (NUL bytes)")
    bad = _utf8_error(data)
    if bad is None:
        return "utf-8", None
    line = data.count(b"\n", 0, bad) + 1
    if UTF8_MULTIBYTE.search(data):
        raise DataError(
            f"{source} mixes encodings: most of it is UTF-8 but line {line} has the byte "
            f"0x{data[bad]:02x}, which is not; {CONVERT.replace('<encoding>', 'WINDOWS-1252')} "
            "from one consistent source"
        )
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return "latin-1", f"{source} is not UTF-8 (first at line {line}): decoded as Latin-1 (ISO-8859-1)"
    return "cp1252", f"{source} is not UTF-8 (first at line {line}): decoded as Windows-1252 (Western European)"


def _first_rows(data: bytes, encoding: str) -> tuple[list[str], list[str]]:
    """The header row as written (pandas renames duplicates and empty names) and the first data
    row's fields; read as a stream, so a large upload is not decoded twice."""
    text = io.TextIOWrapper(io.BytesIO(data), encoding=encoding, errors="replace", newline="")
    rows = csv.reader(text, skipinitialspace=True)
    try:
        header = next(rows, [])
        first = next(rows, [])
    except csv.Error:
        return [], []
    return [c.strip() for c in header], first


def _extra_fields(data: bytes, encoding: str, width: int, source: str) -> int:
    """Rows with more fields than the header (``width``): a trailing empty field (a comma at the
    end of every row, as some spreadsheets export) is ignored; a value there is an error.
    Returns how many rows had an empty extra field."""
    rows = csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding=encoding, newline=""), skipinitialspace=True)
    trailing = 0
    try:
        next(rows, None)
        for fields in rows:
            if len(fields) <= width:
                continue
            if any(f.strip() for f in fields[width:]):
                raise DataError(
                    f"{source} is not a well-formed CSV: line {rows.line_num} has {len(fields)} fields but "
                    f"the header names {width} columns"
                )
            trailing += 1
    except csv.Error:  # a NUL byte, or a field over csv.field_size_limit() characters
        raise DataError(f"{source} is not a well-formed CSV: line {rows.line_num} cannot be read as CSV fields") from None
    return trailing


def _refuse_other_delimiter(header: str, source: str) -> None:
    """Refuse a file whose one header field holds semicolons, tabs or pipes: another delimiter. A
    semicolon file from a European spreadsheet writes decimal commas (``3,5``), which a comma
    reader would otherwise report as rows with more fields than the header."""
    for delimiter, word in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
        if delimiter in header:
            raise DataError(f"{source} looks delimited by {word}, not commas: save it as a comma-separated CSV")


def read_table(data: bytes, source: str) -> tuple[pd.DataFrame, list[str]]:
    """Parse ``data`` as a CSV with a header row; returns the table and notes for the report.

    Decodes what :func:`detect_encoding` accepts; ignores empty trailing fields and unnamed empty
    columns (a spreadsheet's trailing commas); renames duplicate column names ``x`` -> ``x.1`` as
    pandas does, and says so. Raises DataError naming the problem for anything that is not a table.
    """
    if not data[:65536].strip() and not data.strip():
        raise DataError(f"{source} is empty")
    encoding, note = detect_encoding(data, source)
    notes = [note] if note else []
    if not data[:65536].decode(encoding, errors="ignore").strip("\ufeff \t\r\n"):
        raise DataError(f"{source} is empty")
    header, first = _first_rows(data, encoding)
    if len(header) == 1:
        _refuse_other_delimiter(header[0], source)  # before its rows' commas are read as fields
    if header and len(first) > len(header):
        # pandas would take the first column for an index and shift every value left
        trailing = _extra_fields(data, encoding, len(header), source)
        if trailing:
            notes.append(f"{trailing} row(s) end with an empty field past the last column (a trailing comma): ignored")
    try:
        frame = _parse(data, encoding)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{source} has no header row") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{source} is not a well-formed CSV: {_parser_problem(exc)}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    empty = [
        str(name) for name, written in zip(frame.columns, header, strict=False)
        if not written and frame[name].isna().all()
    ]
    if empty:
        header = [h for h, name in zip(header, frame.columns, strict=False) if name not in empty]
        frame = frame.drop(columns=empty)
        notes.append(f"{len(empty)} column(s) with no name and no values ignored (trailing commas in the header)")
    frame.columns = _unique_names(list(frame.columns), header, source, notes)
    notes.extend(read_formatted_numbers(frame))
    if frame.shape[1] == 1:
        name = frame.columns[0]
        _refuse_other_delimiter(name, source)
        raise DataError(f"{source} has a single column ({name!r}): nothing to predict it from")
    if frame.empty:
        raise DataError(f"{source} has a header but no data rows")
    return frame, notes


#: Rows parsed at a time: a chunk's text columns are held as categories (one code per cell) until the
#: whole table is read, instead of one parse of the whole file, whose buffers took about 4x the CSV.
CHUNK_ROWS = 50_000


def _parse(data: bytes, encoding: str) -> pd.DataFrame:
    """``pd.read_csv`` of ``data`` as stepml reads an upload, in chunks of :data:`CHUNK_ROWS` rows.

    The result is the table one ``read_csv`` call gives a file that fits one parser chunk: a column
    of numbers in every chunk is numbers (integers and floats join as floats), a column with text
    in any chunk is all text, as written (pandas' own chunked read would leave numbers parsed in
    the other chunks, a column of both kinds). Text is held as categories of its strings, while
    reading and after (:func:`stepml.tables.is_text`; a code per cell, each distinct string once):
    peak memory is about the table plus one chunk, not the parser's buffers for the whole file, and
    the table a fraction of the same text as objects. The checks read it as they read text.
    """
    options: dict[str, Any] = {
        "na_values": MISSING_MARKERS,
        "keep_default_na": False,
        "skipinitialspace": True,
        "encoding": encoding,
        "index_col": False,  # a row with one field more than the header is data, not an index
    }
    pieces: dict[str, list[pd.Series]] = {}
    names: list[str] = []
    # The columns that are text in the first chunk are parsed as categories from the start: the
    # parser then makes one string per distinct value, not one per cell (a chunk's cells as strings
    # were most of the parse's peak). A column text only in later chunks is read again below.
    head = pd.read_csv(io.BytesIO(data), nrows=CHUNK_ROWS, **options)
    text_first = [str(n) for n, s in head.items() if _is_text([_compact(s)])]
    if len(set(map(str, head.columns))) == head.shape[1] and len(head) == CHUNK_ROWS and text_first:
        options = {**options, "dtype": dict.fromkeys(text_first, "category")}
    del head
    with pd.read_csv(io.BytesIO(data), chunksize=CHUNK_ROWS, **options) as reader:
        for chunk in reader:
            names = names or list(chunk.columns)
            for name, series in chunk.items():
                pieces.setdefault(str(name), []).append(_compact(series))
            del chunk, series
    if not names:  # a header and no rows: read_csv's own empty table
        return pd.read_csv(io.BytesIO(data), nrows=0, **options)
    texts = [n for n in names if _is_text(pieces[n]) and not all(_is_text([p]) for p in pieces[n])]
    if texts:  # text in some chunks, numbers in others: read those columns again, all as text
        for name in texts:
            pieces[name] = []
        again = {k: v for k, v in options.items() if k != "dtype"}
        with pd.read_csv(io.BytesIO(data), chunksize=CHUNK_ROWS, usecols=texts, dtype=str, **again) as reader:
            for chunk in reader:
                for name, series in chunk.items():
                    pieces[str(name)].append(_compact(series))
    columns = {}
    for name in names:
        parts = pieces.pop(name)
        if all(_is_text([part]) for part in parts):
            from pandas.api.types import union_categoricals

            # the spaces around a value go (the parser skips only those before it): a trailing
            # space would make the API's "A" an unseen category of "A "
            columns[name] = trimmed_text(pd.Series(union_categoricals(parts), name=name))
        else:  # numbers, booleans: their common type, as pandas joins its own chunks
            columns[name] = pd.concat(parts, ignore_index=True)
        del parts
    return pd.DataFrame(columns, columns=names, copy=False)


def _compact(series: pd.Series) -> pd.Series:
    """A chunk's column of strings as a category (a code per cell, each distinct string once)."""
    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        return series.astype("category")
    return series


def _is_text(parts: list[pd.Series]) -> bool:
    """Whether any of a column's chunks is text (:func:`_compact` made it a category)."""
    return any(isinstance(part.dtype, pd.CategoricalDtype) for part in parts)


def _parser_problem(exc: Exception) -> str:
    """pandas' parser message without its C-level wording: 'Error tokenizing data. C error: ...'."""
    text = str(exc).strip()
    text = re.sub(r"^Error tokenizing data\. C error: ", "", text)
    unclosed = re.search(r"EOF inside string starting at row (\d+)", text)
    if unclosed:  # pandas counts rows from the header, row 0
        return f"the quoted field that starts on line {int(unclosed.group(1)) + 1} is never closed (a stray \")"
    return text[:300]


def _unique_names(columns: list[str], header: list[str], source: str, notes: list[str]) -> list[str]:
    """Column names made unique (``x``, ``x.1``...), with a note naming each header written twice."""
    counts = Counter(header if len(header) == len(columns) else columns)
    repeated = {name: count for name, count in counts.items() if count > 1 and name}
    seen: set[str] = set()
    unique: list[str] = []
    for name in columns:
        candidate, suffix = name, 0
        while candidate in seen:
            suffix += 1
            candidate = f"{name}.{suffix}"
        seen.add(candidate)
        unique.append(candidate)
    if repeated:
        named = listing(f"{name!r} ({count} times)" for name, count in repeated.items())
        notes.append(
            f"duplicate column name(s) in the header of {source}: {named}; read as "
            f"{listing(repr(n) for n in unique if n not in repeated and n.rsplit('.', 1)[0] in repeated)} "
            "- rename them to say what they hold"
        )
    return unique


def read_formatted_numbers(frame: pd.DataFrame) -> list[str]:
    """Read in place, as numbers, the text columns that hold only numbers as a spreadsheet or a
    finance system writes them (``$42,000.00``, ``5,850``, ``45.2%``: :func:`stepml.columns.formatted_numbers`);
    returns a note per column saying how (``price: read as numbers ($ and thousands separators removed)``)."""
    notes = []
    for name in list(frame.columns):
        found = formatted_numbers(frame[name])
        if found is not None:
            frame[name] = found[0]
            notes.append(f"{name}: read as numbers ({found[1]})")
    return notes


def read_csv(data: bytes, source: str) -> pd.DataFrame:
    """Parse ``data`` as a CSV with a header row (:func:`read_table` without its notes)."""
    return read_table(data, source)[0]


def resolve_target(frame: pd.DataFrame, config: DatasetConfig, source: str) -> str:
    """The target column: the config's, else the last column."""
    target = config.target or str(frame.columns[-1])
    if target not in frame.columns:
        raise DataError(
            f"{source} has no target column {listing([repr(target)], width=200)}; its {frame.shape[1]:,} columns are: "
            f"{listing(frame.columns)}"
        )
    return target


def infer_task(target: pd.Series, config: DatasetConfig) -> str:
    """Classification for text or few-valued targets, regression for other numbers."""
    if config.task:
        return config.task
    values = target.dropna()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "classification"
    if values.nunique() <= MAX_CLASSES and (values == values.round()).all():
        return "classification"
    return "regression"


def _is_number_or_missing(series: pd.Series) -> pd.Series:
    return series.isna() | as_numbers(series).notna()


def blocking_schema(frame: pd.DataFrame, target: str, config: DatasetConfig) -> Any:
    """The pandera schema of the rules that fail a run: numbers mixed with text, too few rows."""
    import pandera.pandas as pa

    columns = {
        name: pa.Column(
            checks=pa.Check(_is_number_or_missing, name="numbers_only"),
            nullable=True,
            required=True,
        )
        for name in frame.columns
        if name not in config.excluded_columns and numbers_expected(frame[name])
    }
    rows = pa.Check(lambda df: len(df) >= config.min_rows, name="min_rows")
    return pa.DataFrameSchema(columns, checks=[rows], strict=False)


def _failures(schema: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """Every failure case of ``schema`` on ``frame`` (empty when it passes)."""
    import pandera.pandas as pa

    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        return exc.failure_cases
    return pd.DataFrame(columns=["column", "check", "failure_case", "index"])


def _line(index: Any) -> int:
    """CSV line of a data row: the header is line 1."""
    return int(index) + 2


def _check_blocking(frame: pd.DataFrame, target: str, config: DatasetConfig, source: str) -> None:
    schema = blocking_schema(frame, target, config)
    # only the columns the schema checks: pandera copies and coerces what it is given (as text:
    # pandas turns no category into a number)
    checked = frame[list(schema.columns)]
    checked = checked.astype({c: object for c in checked.columns if isinstance(checked[c].dtype, pd.CategoricalDtype)})
    failures = _failures(schema, checked)
    if failures.empty:
        return
    problems = []
    if (failures["check"] == "min_rows").any():
        problems.append(
            f"{source} has {len(frame)} data rows; at least {config.min_rows} are needed (config min_rows)"
        )
    mixed = failures[failures["check"] == "numbers_only"]
    for column, cases in mixed.groupby("column", sort=False):
        examples = ", ".join(
            f"line {_line(row['index'])}: {row['failure_case']!r}" for _, row in cases.head(EXAMPLES).iterrows()
        )
        problems.append(
            f"{source}: column {column!r} mixes numbers and text: {len(cases)} of "
            f"{int(frame[column].notna().sum())} values are not numbers ({examples}); "
            "fix those cells, or list the column in drop_columns"
        )
    raise DataError("; ".join(problems))


def _check_finite(frame: pd.DataFrame, columns: list[str], source: str) -> None:
    """Infinite numbers (``inf``, ``-Infinity``, or a number too large for a float such as
    ``1e400``) cannot be trained on or served: name each column, count them, quote lines."""
    problems = []
    for name in columns:
        series = frame[name]
        if pd.api.types.is_float_dtype(series):
            infinite = series[np.isinf(series.to_numpy())]
        elif numbers_expected(series):
            # pandas reads a number beyond the float range (1e400) as text, not as infinity;
            # each distinct value is judged once (a text column repeats its values)
            values = series.dropna()
            distinct = pd.Series(values.unique())
            text = distinct.astype(str)
            overflowing = distinct[(pd.to_numeric(text, errors="coerce").isna() & text.map(_overflows)).to_numpy()]
            infinite = values[values.isin(overflowing)].astype(str)
        else:
            continue
        if infinite.empty:
            continue
        lines = listing((f"line {_line(i)}: {v}" for i, v in infinite.items()), limit=EXAMPLES)
        problems.append(f"column {name!r} has {len(infinite):,} infinite value(s) ({lines})")
    if problems:
        raise DataError(
            f"{source}: {listing(problems, limit=EXAMPLES, width=400)}; a value like inf or 1e400 cannot "
            "be trained on: write a finite number, or leave the cell empty if it is unknown"
        )


#: The largest value the served model can output: ONNX regressors compute in 32-bit floats.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_float32(y: pd.Series, target: str, source: str) -> None:
    """A regression target beyond ±3.4e38 trains, but its ONNX model predicts infinity."""
    values = pd.to_numeric(y, errors="coerce")
    beyond = values[values.abs() > FLOAT32_MAX]
    if not beyond.empty:
        lines = listing((f"line {_line(i)}: {v:g}" for i, v in beyond.items()), limit=EXAMPLES)
        raise DataError(
            f"{source}: target column {target!r} has {len(beyond):,} value(s) beyond ±{FLOAT32_MAX:.1e} "
            f"({lines}), which the served model (32-bit floats) cannot predict: rescale the target "
            "(e.g. to thousands or a logarithm)"
        )


def _overflows(text: str) -> bool:
    try:
        return math.isinf(float(text))
    except ValueError:
        return False


#: A classifier needs at least this many rows of most classes: one row per class teaches nothing.
MIN_ROWS_PER_CLASS = 2


def _check_classes(y: pd.Series, target: str, source: str) -> None:
    """Refuse a class label that is (nearly) unique per row: a key or a free-text column, not a class."""
    counts = y.value_counts(dropna=True)
    singletons = int((counts < MIN_ROWS_PER_CLASS).sum())
    if len(counts) > MAX_CLASSES and singletons > len(counts) / 2:
        raise DataError(
            f"{source}: target column {target!r} has {len(counts):,} classes and {singletons:,} of them "
            f"occur in a single row (e.g. {listing(map(repr, counts.index[counts < MIN_ROWS_PER_CLASS]), limit=EXAMPLES)}): "
            "a classifier cannot learn a class from one example. If the target is a number, set "
            "task: regression in the config; otherwise choose a target with repeated classes"
        )


def _date_warnings(name: str, series: pd.Series, found: dateparts.DateFormat) -> list[str]:
    """Values the column's date format cannot read (trained on as missing), and a format that
    reads every value as well (month-first and day-first, when no day is above 12)."""
    messages = []
    values = series.dropna().astype(str)
    unreadable = {v for v in values.unique() if dateparts.parse(v, found.format) is None}  # each value once
    unread = values[values.isin(unreadable)]
    if len(unread):
        examples = ", ".join(f"line {_line(i)}: {v!r}" for i, v in unread.head(EXAMPLES).items())
        messages.append(
            f"column {name!r}: {len(unread)} value(s) are not dates in its format "
            f"{dateparts.describe(found.format)} ({examples}); they are trained on as missing"
        )
    if found.alternatives:
        messages.append(
            f"column {name!r} is read as {dateparts.describe(found.format)}, but "
            f"{dateparts.describe(found.alternatives[0])} reads its values too: check the month and "
            "day are not swapped (write the dates as ISO 8601, YYYY-MM-DD, to be sure)"
        )
    return messages


class _Counts:
    """Missing and distinct values per column, and incomplete rows: counted once per upload (each
    count is a pass over a column; the report and the warnings use them several times)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        absent = frame.isna()
        self.missing = {name: int(n) for name, n in absent.sum().items()}
        self.rows_with_missing = int(absent.any(axis=1).sum())
        del absent
        self.unique = {name: int(frame[name].nunique(dropna=True)) for name in frame.columns}


def _warnings(
    frame: pd.DataFrame, target: str, features: list[str], kept: tuple[str, ...], dates: list[str],
    counts: _Counts,
) -> tuple[list[str], int]:
    """Readable warnings, in column order, and the number of duplicate rows."""
    messages: list[str] = []
    for name in features:
        series = frame[name]
        unique = counts.unique[name]
        if unique <= 1:
            messages.append(f"column {name!r} is constant: it cannot help the model")
        missing = counts.missing[name]
        if missing:
            messages.append(f"column {name!r} has {missing} missing value(s)")
        categorical = column_kind(series) == "categorical" and name not in dates
        if name in kept and is_identifier(series):
            messages.append(
                f"column {name!r} is unique per row (it looks like an identifier) but is trained on "
                "as keep_columns asks"
            )
        if categorical and unique > HIGH_CARDINALITY:
            messages.append(f"column {name!r} has {unique} distinct values (high cardinality)")
    duplicates = duplicate_rows(frame)
    if duplicates:
        messages.append(f"{duplicates} duplicate row(s)")
    return messages, duplicates


#: Rows on each side (missing, present) before a feature missing exactly on one class is named a leak.
LEAK_MIN_ROWS = 10


def _leak_warnings(frame: pd.DataFrame, target: str, features: list[str], missing: dict[str, int]) -> list[str]:
    """A feature missing on exactly the rows of one class (and on no other row) tells the model the
    class by itself: mostly a value recorded only after the outcome (survival's flchain: the cause
    of death, missing exactly when ``death`` is 0), which scores impossibly well and means nothing
    on new rows. Named once each side holds :data:`LEAK_MIN_ROWS` rows."""
    labelled = frame[target].notna().to_numpy()
    y = frame[target].astype(object).to_numpy()[labelled]
    found = []
    for name in features:
        if missing[name] < LEAK_MIN_ROWS:
            continue
        absent = frame[name].isna().to_numpy()[labelled]
        if absent.sum() < LEAK_MIN_ROWS or (~absent).sum() < LEAK_MIN_ROWS:
            continue
        classes = pd.unique(y[absent])
        if len(classes) == 1 and not (y[~absent] == classes[0]).any():
            found.append(
                f"column {name!r} is missing exactly when {target!r} is {classes[0]!r} ({int(absent.sum()):,} "
                "rows): it tells the model the class by itself - a value known only after the outcome leaks "
                f"the target, and scores impossibly well. If so, list it in drop_columns"
            )
    return found


def duplicate_rows(frame: pd.DataFrame) -> int:
    """How many rows repeat an earlier row (``frame.duplicated().sum()``, missing values equal).

    Rows are numbered column by column (the numbers of the columns so far, then of this one), so
    memory holds two numbers per row, not one per cell as ``DataFrame.duplicated`` does.
    """
    groups = np.zeros(len(frame), dtype=np.int64)
    distinct = 1 if len(frame) else 0
    for name in frame.columns:
        codes, uniques = pd.factorize(frame[name], use_na_sentinel=False)
        groups, found = pd.factorize(groups * len(uniques) + codes)  # < rows * rows: fits 64 bits
        distinct = len(found)
        del codes
    return len(frame) - distinct


def validate(frame: pd.DataFrame, config: DatasetConfig, source: str) -> dict[str, Any]:
    """Check ``frame`` against the blocking rules and describe it; returns the report.

    Keys: ``rows``, ``columns`` (``name``, ``kind``, ``missing``, ``unique``, ``role``; role is one of
    target, feature, dropped, id, date; a date column, trained on as its parts, also has ``format``
    and ``parts``), ``target``, ``task``, ``task_inferred``,
    ``target_distribution``, ``minority_classes`` (class -> share, the classes under
    :data:`~stepml.config.MINORITY_SHARE`), ``duplicate_rows``, ``rows_with_missing``, ``primary_metric``
    (the config's, else the task's default: balanced accuracy when a class is a minority),
    ``dropped_columns`` (name -> why: ``drop_columns``, ``id_columns``, ``id`` for a column
    :func:`is_identifier` left out) and ``warnings``.
    """
    target = resolve_target(frame, config, source)
    if target in config.excluded_columns:
        key = "drop_columns" if target in config.drop_columns else "id_columns"
        raise ConfigError(
            f"config {key} names {target!r}, the target of {source} (its last column, as the config "
            "names no target): set target to the column to predict, or keep this one"
        )
    absent = [c for c in config.excluded_columns if c not in frame.columns]
    if absent:
        key = "drop_columns" if any(c in config.drop_columns for c in absent) else "id_columns"
        raise DataError(f"config {key} names column(s) not in {source}: {listing(absent)}")
    unknown = [c for c in config.keep_columns if c not in frame.columns]
    if unknown:
        raise ConfigError(f"config keep_columns names column(s) not in {source}: {listing(unknown)}")
    if len(frame) < config.min_rows:
        raise DataError(
            f"{source} has {len(frame)} data rows; at least {config.min_rows} are needed (config min_rows)"
        )
    y = frame[target]
    if isinstance(y.dtype, pd.CategoricalDtype):
        y = y.astype(object)  # one column: its counts (and their order in the report) as text gives them
    if y.isna().all():
        raise DataError(f"{source}: target column {target!r} has no values (all missing)")
    task = infer_task(y, config)
    if task == "classification" and y.nunique(dropna=True) < 2:
        raise DataError(
            f"{source}: target column {target!r} has a single class ({y.dropna().iloc[0]!r}); "
            "a classifier needs at least two"
        )
    if task == "regression" and not pd.api.types.is_numeric_dtype(y):
        if numbers_expected(y):
            _check_blocking(frame[[target]], target, DatasetConfig(min_rows=2), source)
        raise DataError(f"{source}: target column {target!r} is not numeric, so it cannot be regressed")
    _check_finite(frame, [c for c in frame.columns if c not in config.excluded_columns], source)
    _check_blocking(frame, target, config, source)
    if task == "classification":
        _check_classes(y, target, source)
    else:
        _check_float32(y, target, source)
    check_config_for_task(config, task, frame, target)

    dates = date_columns(frame, exclude=(target, *config.excluded_columns))
    ids = identifier_columns(frame, target, config, dates)
    features = [c for c in frame.columns if c != target and c not in config.excluded_columns and c not in ids]
    if not features:
        only = f" (left out as identifiers: {', '.join(ids)}; keep_columns trains on them)" if ids else ""
        raise DataError(f"{source} has no feature columns besides the target {target!r}{only}")

    counts = _Counts(frame)
    warnings, duplicates = _warnings(frame, target, features, config.keep_columns, dates, counts)
    for name in ids:
        kind = "integers" if column_kind(frame[name]) == "numeric" else "text"
        warnings.append(
            f"column {name!r} is unique per row ({kind}, a different value in each of "
            f"{len(frame) - counts.missing[name]} rows): an identifier, not a feature, so it is left out "
            "of training (list it in keep_columns to train on it)"
        )
    formats = {}
    for name in dates:
        found = date_format(frame[name])
        if found is not None:  # found on the same values as date_columns: always
            formats[name] = found
            warnings.extend(_date_warnings(name, frame[name], found))
    dropped = {c: "drop_columns" for c in config.drop_columns}
    dropped.update({c: "id_columns" for c in config.id_columns})
    dropped.update({c: "id" for c in ids})
    columns = []
    for name in frame.columns:
        column: dict[str, Any] = {
            "name": name,
            "kind": column_kind(frame[name]),
            "missing": counts.missing[name],
            "unique": counts.unique[name],
            "role": _role(name, target, config, dates, ids),
        }
        if name in formats:  # trained on as these parts, read with this format
            column.update(kind="date", format=formats[name].format, parts=list(formats[name].parts))
        columns.append(column)
    if task == "classification":
        warnings.extend(_leak_warnings(frame, target, features, counts.missing))
        numbers = y.dropna()
        if config.task is None and pd.api.types.is_numeric_dtype(numbers) and not pd.api.types.is_bool_dtype(numbers) \
                and numbers.nunique() > MANY_NUMBER_CLASSES:
            warnings.append(
                f"target {target!r} holds {numbers.nunique()} whole numbers ({numbers.min():g} to {numbers.max():g}), "
                f"read as {numbers.nunique()} classes (at most {MAX_CLASSES} distinct whole numbers are classes): "
                "if they are counts, amounts or a rating whose order matters, set task: regression in the config"
            )
    missing_target = counts.missing[target]
    if missing_target:
        warnings.append(f"{missing_target} row(s) have no target value and will be dropped")
    minority: dict[str, float] = {}
    if task == "classification":
        distribution: dict[str, float] = {str(k): int(v) for k, v in y.value_counts(dropna=True).items()}
        total = sum(distribution.values())
        minority = {k: round(v / total, 4) for k, v in distribution.items() if v / total < MINORITY_SHARE}
        smallest = min(distribution.values()) / total
        if minority:
            named = ", ".join(f"{k!r} is {share:.1%}" for k, share in minority.items())
            then = (
                f"the config's primary_metric {config.primary_metric} is kept"
                if config.primary_metric
                else f"the primary metric is {IMBALANCED_METRIC} and the classes are weighted"
            )
            warnings.append(
                f"target {target!r} is imbalanced: class {named} of the rows (under "
                f"{MINORITY_SHARE:.0%}); {then}"
            )
        elif smallest < 0.2:
            warnings.append(
                f"classes are imbalanced (the smallest is {smallest:.1%} of the rows): consider "
                "primary_metric balanced_accuracy or f1, which also weights the classes"
            )
    else:
        described = y.describe()
        distribution = {k: float(described[k]) for k in ("mean", "std", "min", "50%", "max")}
    return {
        "source": source,
        "rows": len(frame),
        "columns": columns,
        "target": target,
        "task": task,
        "task_inferred": config.task is None,
        "primary_metric": config.metric_for(task, imbalanced=bool(minority)),
        "minority_classes": minority,
        "target_distribution": distribution,
        "duplicate_rows": duplicates,
        "rows_with_missing": counts.rows_with_missing,
        "dropped_columns": dropped,
        "warnings": warnings,
    }


def check_config_for_task(
    config: DatasetConfig, task: str, frame: pd.DataFrame | None = None, target: str | None = None
) -> None:
    """Config choices that depend on the task: metric, recipe, estimator params (against the
    estimator's constraints and, given ``frame`` and ``target``, the target's classes), test rows."""
    from stepml.config import METRICS
    from stepml.recipes import check_params

    if config.primary_metric and config.primary_metric not in METRICS[task]:
        raise ConfigError(
            f"config primary_metric {config.primary_metric!r} does not apply to {task}; "
            f"choose one of {', '.join(METRICS[task])}"
        )
    if config.split.test_rows is not None and frame is not None and config.split.test_rows >= len(frame):
        raise ConfigError(
            f"config split.test_rows is {config.split.test_rows} but the upload has only {len(frame)} rows"
        )
    classes = None
    if task == "classification" and frame is not None and target is not None:
        from stepml.preprocessing import class_labels

        classes = sorted(class_labels(frame[target].dropna()).unique().tolist(), key=str)
    check_params(config, task, classes)
    if task == "regression" and frame is not None and target is not None:
        _check_loss_target(config, frame, target)
    if config.tune is not None:
        import importlib.util

        if importlib.util.find_spec("optuna") is None:
            raise ConfigError("config tune needs the optuna package, which is not installed here; remove tune")


#: Losses fitted on the log of the mean (LightGBM refuses a target outside their range mid-fit):
#: poisson takes counts (non-negative, not all zero), gamma amounts above zero.
LOG_LINK_LOSSES = {"poisson": "non-negative (counts), not all zero", "gamma": "above zero"}


def _check_loss_target(config: DatasetConfig, frame: pd.DataFrame, target: str) -> None:
    """A ``params.loss`` of :data:`LOG_LINK_LOSSES` needs a target in its range: say which rows are not."""
    loss = config.params.get("loss")
    if loss not in LOG_LINK_LOSSES:
        return
    values = pd.to_numeric(frame[target], errors="coerce")
    outside = values[values < 0] if loss == "poisson" else values[values <= 0]
    if len(outside):
        examples = ", ".join(f"line {_line(index)}: {value:g}" for index, value in outside.head(EXAMPLES).items())
        raise ConfigError(
            f"config params.loss {loss!r} needs a target {LOG_LINK_LOSSES[loss]}, but column {target!r} has "
            f"{len(outside)} value(s) outside that ({examples}); choose another loss (e.g. squared_error) or fix those rows"
        )
    if loss == "poisson" and not (values > 0).any():
        raise ConfigError(f"config params.loss 'poisson' needs some counts above zero, but column {target!r} is zero "
                          "on every row")


def _role(name: str, target: str, config: DatasetConfig, dates: list[str], ids: list[str]) -> str:
    if name == target:
        return "target"
    if name in config.drop_columns:
        return "dropped"
    if name in config.id_columns or name in ids:
        return "id"
    if name in dates:
        return "date"
    return "feature"
