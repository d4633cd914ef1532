"""What kind of values a column holds: numbers, categories, dates, identifiers, missing markers.

The column typing that validation, preprocessing and the validation report share, apart from the
rules that judge an upload (:mod:`stepml.validation`): preprocessing reads a table's columns the
same way without importing validation.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from stepml import cells, dateparts
from stepml.cells import MISSING_MARKERS  # re-exported: the cell values read as missing
from stepml.config import DatasetConfig

#: A text column where at least this share of the values are numbers is a numeric column with typos.
NUMERIC_SHARE = 0.8
#: A text column where at least this share of the values read with one date format is a date column.
DATE_SHARE = dateparts.DATE_SHARE
#: A column needs more values than this to be called an identifier (see :func:`is_identifier`).
ID_MIN_ROWS = 50
#: ...and at least this share of the rows must have a value.
ID_PRESENT_SHARE = 0.9


def trimmed_text(series: pd.Series) -> pd.Series:
    """A text column (categories of strings, or strings) without the spaces around its values, as
    every later reader compares them (the API strips what a client sends); a value that is then
    empty or a missing marker is missing, as it would be written without the spaces.

    A CSV writes ``"PAPUA N.GUINEA "`` (Rdatasets' SumHes) or ``39, State-gov`` (UCI's adult.data);
    kept as written, a client sending the name as read would get an unseen category.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        written = pd.Index(series.cat.categories.astype(str))
        stripped = written.str.strip()
        if stripped.equals(written) and not stripped.isin(MISSING_MARKERS).any():
            return series
        kept = pd.Index(stripped[~stripped.isin(MISSING_MARKERS)]).unique()
        position = kept.get_indexer(stripped)  # -1: a value that is now missing
        codes = series.cat.codes.to_numpy()
        recoded = np.where(codes >= 0, position[np.maximum(codes, 0)], -1)
        return pd.Series(pd.Categorical.from_codes(recoded, kept), index=series.index, name=series.name)
    if series.dtype == object:
        stripped = series.str.strip()
        return stripped.mask(stripped.isin(MISSING_MARKERS))
    return series


def column_kind(series: pd.Series) -> str:
    """``numeric`` for number columns, ``categorical`` for everything else (text, booleans)."""
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    return "numeric" if numeric else "categorical"


def _text_values(series: pd.Series, limit: int | None = None) -> pd.Series:
    """The non-missing values as stripped text (the first ``limit`` of them, when given)."""
    values = series.dropna()
    if limit is not None:
        values = values.head(limit)
    return values.astype(str).str.strip()


def distinct_text(series: pd.Series) -> pd.Series:
    """How often each distinct non-missing value occurs, indexed by its stripped text.

    A text column of an upload repeats few values (categories) many times: judging each distinct
    value once, weighted by its count, costs the same as judging every cell, far faster.
    """
    counts = series.value_counts(dropna=True, sort=False)
    counts = counts[counts > 0]  # a category no row holds (categories list every value once seen)
    text = pd.Index(counts.index.astype(str)).str.strip()
    return pd.Series(counts.to_numpy(), index=text).groupby(level=0, sort=False).sum()


def numbers_expected(series: pd.Series) -> bool:
    """A text column whose values are mostly numbers: the rest are typos, not categories."""
    if column_kind(series) == "numeric" or pd.api.types.is_bool_dtype(series):
        return False
    counts = distinct_text(series)
    if counts.empty or counts.index.isin(["True", "False"]).all():
        return False
    parsed = np.fromiter((cells.number(text) is not None for text in counts.index), dtype=bool, count=len(counts))
    return bool(counts.to_numpy()[parsed].sum() / counts.sum() >= NUMERIC_SHARE)


def as_numbers(series: pd.Series) -> pd.Series:
    """A column's values as float64, as the model reads a numeric feature: a number column as it
    is; text read by :func:`stepml.cells.number` (``"$1,234"`` is 1234; each distinct value once),
    NaN where a value is missing or not a number."""
    if column_kind(series) == "numeric":
        return series.astype("float64", copy=False)
    if pd.api.types.is_bool_dtype(series):
        return pd.Series(np.nan, index=series.index, dtype="float64")
    text = series.astype("category") if not isinstance(series.dtype, pd.CategoricalDtype) else series
    values = [cells.number(str(c)) for c in text.cat.categories]
    lookup = np.asarray([np.nan if v is None else v for v in values] + [np.nan], dtype="float64")
    codes = text.cat.codes.to_numpy()
    return pd.Series(lookup[np.where(codes < 0, len(values), codes)], index=series.index, dtype="float64")


#: How the report words each way a number was formatted (:func:`stepml.cells.number_format`).
FORMATTING = {"currency": "{symbols}", "thousands": "thousands separators", "percent": "%"}


def formatted_numbers(series: pd.Series) -> tuple[pd.Series, str] | None:
    """A text column whose every non-missing value is a number, some of them formatted
    (``$42,000.00``, ``5,850``, ``45.2%``: :func:`stepml.cells.number_format`), as the numbers the
    same values written plainly would be read as (whole numbers with none missing: integers), and
    how, for the report (``$ and thousands separators removed``). None for any other column:
    one value that is not a number keeps the column text (a numeric column with typos, refused
    with the values named when :func:`numbers_expected`; categories otherwise)."""
    if not isinstance(series.dtype, pd.CategoricalDtype) and series.dtype != object:
        return None
    text = series.astype("category") if not isinstance(series.dtype, pd.CategoricalDtype) else series
    categories = text.cat.categories
    if len(categories) == 0 or (text.cat.codes.to_numpy() < 0).all():
        return None
    how: set[str] = set()
    symbols: list[str] = []
    for category in categories:  # each distinct value once; the first that is not a number ends it
        found = cells.number_format(str(category)) if isinstance(category, str) else None
        if found is None:
            return None
        how.update(found[1])
        if "currency" in found[1]:
            symbols.extend(c for c in str(category) if c in cells.CURRENCIES and c not in symbols)
    if not how:
        return None
    numbers = as_numbers(text)
    whole = not any("." in str(c) for c in categories) and numbers.notna().all()
    if whole and numbers.abs().max() < 2**53:
        numbers = numbers.astype("int64")
    words = [FORMATTING[k].format(symbols=" ".join(symbols)) for k in ("currency", "thousands", "percent") if k in how]
    removed = ", ".join(words[:-1]) + (" and " if len(words) > 1 else "") + words[-1] + " removed"
    if "percent" in how:
        removed += ": a percentage is kept as written, 45.2% is 45.2"
    return numbers.rename(series.name), removed


def date_format(series: pd.Series) -> dateparts.DateFormat | None:
    """How a text column's values read as dates (:func:`stepml.dateparts.detect`); None when they
    are not dates (or the column is numbers or booleans)."""
    if column_kind(series) == "numeric" or pd.api.types.is_bool_dtype(series):
        return None
    return dateparts.detect(_text_values(series, dateparts.SAMPLE).tolist())


def looks_like_dates(series: pd.Series) -> bool:
    """A text column whose values (nearly) all read with one date format."""
    return date_format(series) is not None


def date_columns(frame: pd.DataFrame, exclude: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The columns :func:`looks_like_dates` says hold dates (trained on as their parts)."""
    return [str(c) for c in frame.columns if c not in exclude and looks_like_dates(frame[c])]


def is_identifier(series: pd.Series) -> bool:
    """Integers or text with a different value in every row: a row number or a key, not a feature.

    A model fitted on it learns the rows, not the data: a row number on a table sorted by its target
    scores impossibly well on a random split and means nothing on new rows. Floats never qualify
    (a continuous measurement is often unique per row), nor booleans, nor columns of at most
    :data:`ID_MIN_ROWS` values, where every value being different says nothing. Integers qualify
    whether consecutive (1, 2, 3...) or not (shuffled customer keys). A few missing values are
    allowed: at least :data:`ID_PRESENT_SHARE` of the rows must have one. A row index
    (:func:`is_row_index`) always qualifies.
    """
    if pd.api.types.is_bool_dtype(series):
        return False
    if is_row_index(series):
        return True
    if not (pd.api.types.is_integer_dtype(series) or column_kind(series) == "categorical"):
        return False
    values = series.dropna()
    if len(values) <= ID_MIN_ROWS or len(values) < ID_PRESENT_SHARE * len(series):
        return False
    return bool(values.nunique() == len(values))


#: The name pandas gives a column whose header is blank: R's and pandas' own row names are written so.
UNNAMED = re.compile(r"Unnamed: \d+")


def is_row_index(series: pd.Series) -> bool:
    """A column with a blank header holding a distinct whole number in every row: the row names R
    (1, 2, 3...) and pandas (0, 1, 2...) write before the data, in the order the rows were when
    they were numbered, at any table size (:func:`is_identifier` judges other columns only above
    :data:`ID_MIN_ROWS` rows). On a 32-row table sorted by its target (Rdatasets' HSAUR plasma,
    its row names 1, 2, 4, ... 29 in the file) such a column was a feature."""
    if not UNNAMED.fullmatch(str(series.name)) or not pd.api.types.is_integer_dtype(series):
        return False
    return bool(len(series) > 1 and series.notna().all() and series.is_unique)


def identifier_columns(
    frame: pd.DataFrame, target: str, config: DatasetConfig, dates: list[str] | None = None
) -> list[str]:
    """The columns :func:`is_identifier` finds, left out of training by default.

    Not counted: the target, columns the config already drops or lists as ids, ``keep_columns``
    and date columns (``dates``; found here when not given) — a unique timestamp is a date.
    """
    skip = {target, *config.excluded_columns, *config.keep_columns}
    if dates is None:
        dates = date_columns(frame, exclude=tuple(skip))
    skip.update(dates)
    return [str(c) for c in frame.columns if c not in skip and is_identifier(frame[c])]
