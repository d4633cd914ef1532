"""Typed, columnar tables between the pipeline's stages: Parquet, written and read with fastparquet.

The upload is parsed once, by Validate (:func:`stepml.validation.read_table`); every later stage
reads the table it needs as Parquet, with the dtypes that parse gave it, instead of parsing CSV
again. fastparquet (with cramjam's codecs) is used rather than pyarrow because it fits in the ML
layer (about 11 MB against pyarrow's 170 MB); the engine is named on every call, so a machine that
also has pyarrow (the local venv) reads and writes exactly what Lambda does. Nothing is pickled.

Text columns are written as text: a CSV column that pandas read as objects holds strings, or, in a
column mixing kinds, numbers and booleans next to them; each value is written as the text ``str``
gives it (what a CSV round trip used to give the stages), missing values stay missing. Validate's
parse holds text as categories of strings (:func:`stepml.validation.read_table`): those are text
too, and the stages read text back as categories (``text="category"``): one small code per cell
instead of a pointer to a string, a quarter of a text column's memory at most.
"""

from __future__ import annotations

import io
import json
from typing import Literal

import pandas as pd

from stepml.errors import DataError

#: The Parquet engine every stage uses (pandas would pick pyarrow where it is installed).
ENGINE = "fastparquet"
#: Column compression: zstd, via cramjam (small objects in S3, fast to decode).
COMPRESSION = "ZSTD"
#: Content type of a Parquet object in S3.
CONTENT_TYPE = "application/vnd.apache.parquet"
#: The four bytes a Parquet file begins and ends with.
PARQUET_MAGIC = b"PAR1"
#: The footer's length, a little-endian 4-byte integer just before the closing magic.
FOOTER_LENGTH_BYTES = 4


def as_text(series: pd.Series) -> pd.Series:
    """The non-missing values of ``series`` as ``str`` gives them (objects), missing ones None."""
    present = series.notna()
    text = series.astype(object).where(present, None)
    text[present] = series[present].map(str)
    return text


#: Key of the file metadata listing the text columns written as dictionary-encoded categories.
TEXT_COLUMNS = "stepml.text_columns"


def to_parquet(frame: pd.DataFrame) -> bytes:
    """``frame`` (string column names, any index) as Parquet bytes; its index is not kept.

    Text columns (objects, or categories of strings as Validate parses them) are written
    dictionary-encoded (as categories) and read back by :func:`read_parquet` as categories, or as
    objects with each distinct value one shared ``str``: a pointer per row instead of a string.
    """
    columns = {}
    text_columns = []
    for name in frame.columns:
        series = frame[name]
        if is_text(series):
            # categories no row uses (a split's other side) are not written: what is read back
            # counts only the values that are there, as objects do
            series = series.cat.remove_unused_categories()
            text_columns.append(str(name))
        elif series.dtype == object:
            if pd.api.types.infer_dtype(series, skipna=True) not in ("string", "empty"):
                series = as_text(series)  # a column of strings (the usual case) is written as it is
            series = series.astype("category")
            text_columns.append(str(name))
        columns[str(name)] = series.array  # the values, without the index: no copy of the numbers
    # a view of the table's numbers and the text's categories, not a copy (peak memory)
    typed = pd.DataFrame(columns, index=pd.RangeIndex(len(frame)), copy=False)
    buffer = io.BytesIO()
    typed.to_parquet(buffer, engine=ENGINE, compression=COMPRESSION, index=False,
                     custom_metadata={TEXT_COLUMNS: json.dumps(text_columns)})
    return buffer.getvalue()


def is_text(series: pd.Series) -> bool:
    """A column of text held as categories (a code per cell, each distinct string once)."""
    dtype = series.dtype
    return isinstance(dtype, pd.CategoricalDtype) and pd.api.types.infer_dtype(dtype.categories) in ("string", "empty")


def read_parquet(data: bytes, source: str, columns: list[str] | None = None,
                 text: Literal["object", "category"] = "object") -> pd.DataFrame:
    """The table in Parquet ``data`` (written by :func:`to_parquet`), or only its ``columns``;
    ``source`` names it in errors.

    Text columns come back as objects (``text="object"``; missing values NaN, as pandas' CSV
    parser gives them), or as categories of those strings (``text="category"``: what the stages
    read, a small code per cell; only the values present are categories).
    """
    import fastparquet

    if (problem := _not_parquet(data)) is not None:
        # checked here: fastparquet reads a footer whose length it does not check against the
        # object's, and its compiled metadata parser crashed the process on such bytes (a CSV)
        raise DataError(f"{source} is not a readable Parquet table: {problem}")
    try:
        table = fastparquet.ParquetFile(io.BytesIO(data))
        frame = table.to_pandas(columns=columns)
        text_columns = set(json.loads(table.key_value_metadata.get(TEXT_COLUMNS, "[]")))
    except Exception as exc:  # fastparquet's and thrift's own error classes
        raise DataError(f"{source} is not a readable Parquet table: {exc}"[:500]) from exc
    for name in frame.columns:
        if name in text_columns and text == "object":
            frame[name] = frame[name].astype(object)
        elif isinstance(frame[name].dtype, pd.CategoricalDtype):
            # fastparquet sets a category column's labels after building the frame: the frame's own
            # dtype record still says 0..n-1 until the column is set again
            frame[name] = frame[name].copy()
    return frame


def _not_parquet(data: bytes) -> str | None:
    """What makes ``data`` no Parquet file at all (None: it has Parquet's frame): the magic
    ``PAR1`` at both ends, and a footer length that fits between them."""
    magic, length = len(PARQUET_MAGIC), FOOTER_LENGTH_BYTES
    if len(data) < 2 * magic + length:
        return f"{len(data)} bytes, too few for a Parquet file"
    if data[:magic] != PARQUET_MAGIC or data[-magic:] != PARQUET_MAGIC:
        return "it does not begin and end with Parquet's magic bytes PAR1"
    footer = int.from_bytes(data[-magic - length:-magic], "little")
    if footer > len(data) - 2 * magic - length:
        return f"its footer claims {footer:,} bytes of a {len(data):,}-byte object"
    return None


__all__ = ["CONTENT_TYPE", "ENGINE", "as_text", "is_text", "read_parquet", "to_parquet"]
