"""Clean a validated table and split it into training and test sets; describe its features.

The transforms that must also run at prediction time (encoding, scaling) are not applied here:
they live inside the recipe's fitted scikit-learn Pipeline (:mod:`stepml.recipes`), so serving
applies exactly what training learned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from stepml import dateparts, recipes
from stepml.columns import as_numbers, column_kind, date_columns, date_format, identifier_columns
from stepml.config import DatasetConfig
from stepml.errors import DataError


def clean(
    frame: pd.DataFrame, target: str, config: DatasetConfig, ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """Drop excluded and id columns and rows without a target, and incomplete rows for a recipe
    that trains on complete rows only (seed A).

    ``ids``: the id-like columns to leave out, as found on the whole upload (a part of it, such as
    a short test split, may be too short to tell); found on ``frame`` when not given.
    The other recipes keep incomplete rows: their pipelines impute.
    """
    rows, kept = _kept(frame, target, config, ids)
    # one copy of the kept rows and columns (a copy per step is a copy of the table each)
    cleaned = frame.loc[rows, kept]
    cleaned.reset_index(drop=True, inplace=True)
    return _only_present_categories(cleaned)


def _only_present_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each text column's categories cut to the values its rows hold: a part of a
    table then counts its classes and values as the same text as objects would (a category no row
    holds would count 0)."""
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].cat.remove_unused_categories()
    return frame


def _kept(
    frame: pd.DataFrame, target: str, config: DatasetConfig, ids: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Which rows (a mask) and columns :func:`clean` keeps."""
    excluded = [c for c in config.excluded_columns if c in frame.columns]
    dates = date_columns(frame, exclude=(target, *excluded))
    if ids is None:
        ids = identifier_columns(frame, target, config, dates)
    excluded += [c for c in ids if c in frame.columns and c not in dates]
    kept = [c for c in frame.columns if c not in set(excluded)]
    rows = frame[target].notna()
    if recipes.get(config.recipe).complete_rows_only:
        rows &= frame[kept].notna().all(axis=1)
    return rows.to_numpy(), kept


def split(
    frame: pd.DataFrame,
    target: str,
    task: str,
    config: DatasetConfig,
    test_frame: pd.DataFrame | None = None,
    ids: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cleaned training and test sets, chosen as ``config.split`` says.

    ``test_frame`` (the parsed ``split.test_file``) is the test set as given; else the first
    ``split.test_rows`` rows of ``frame`` are; else a random ``split.test_size`` hold-out of the
    cleaned rows with ``split.seed``, stratified for classification when ``split.stratify`` and every
    class has two rows. Id-like columns are found once, on ``frame`` (the whole upload), unless
    given (``ids``: :func:`stepml.columns.identifier_columns` of ``frame``).
    """
    if ids is None:
        ids = identifier_columns(frame, target, config)
    if test_frame is not None:
        missing = [c for c in frame.columns if c not in test_frame.columns]
        if missing:
            raise DataError(
                f"config split.test_file {config.split.test_file!r} lacks column(s) of the upload: "
                f"{', '.join(missing)}"
            )
        return (clean(frame, target, config, ids),
                clean(test_frame[list(frame.columns)], target, config, ids))
    rows = config.split.test_rows
    if rows is not None:
        if rows >= len(frame):
            raise DataError(f"config split.test_rows is {rows} but the upload has only {len(frame)} rows")
        return clean(frame.iloc[rows:], target, config, ids), clean(frame.iloc[:rows], target, config, ids)
    # The split is drawn over the kept rows' positions, and each side copied once from ``frame``:
    # the same rows, in the same order, as splitting a cleaned copy, without that third copy.
    mask, kept = _kept(frame, target, config, ids)
    positions = np.flatnonzero(mask)
    if len(frame) < np.iinfo(np.int32).max:
        positions = positions.astype(np.int32)  # half the memory of the split's own index arrays
    labels = _split_labels(frame[target], positions)
    stratify = None
    test_size: float | int = config.split.test_size
    counts = pd.Series(labels).value_counts()
    if config.split.stratify and task == "classification" and counts.min() >= 2:
        # A stratified split puts at least one row of every class on each side: with many classes
        # and few rows, hold out one row per class even where test_size would give fewer (every
        # class has two rows, so the training side keeps one of each too).
        test_size = max(math.ceil(test_size * len(positions)), len(counts))
        stratify = labels
    train_rows, test_rows = train_test_split(
        positions, test_size=test_size, random_state=config.split.seed, stratify=stratify
    )
    del labels, stratify, positions
    return _rows(frame, train_rows, kept), _rows(frame, test_rows, kept)


def _rows(frame: pd.DataFrame, positions: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """``frame.iloc[positions][columns]`` numbered from 0: each column taken once, on its own
    (``iloc`` on rows and columns took the rows of a whole block first, then the columns again)."""
    taken = {name: frame[name].array.take(positions) for name in columns}
    return _only_present_categories(
        pd.DataFrame(taken, index=pd.RangeIndex(len(positions)), columns=columns, copy=False))


def _split_labels(target: pd.Series, positions: np.ndarray) -> np.ndarray:
    """The target at ``positions``, as the split stratifies it. A text target (categories) gives
    each class's rank among the classes sorted as text: the classes ``train_test_split`` finds, in
    the order it finds them, so the same rows on each side as the labels themselves would give,
    without a string per row."""
    if isinstance(target.dtype, pd.CategoricalDtype):
        categories = target.cat.categories.to_numpy(dtype=object)
        rank = np.empty(len(categories), dtype=np.min_scalar_type(max(len(categories) - 1, 0)))
        rank[np.argsort(categories, kind="stable")] = np.arange(len(categories))  # one byte a row, mostly
        return rank[target.cat.codes.to_numpy()[positions]]
    return target.to_numpy()[positions]


def feature_schema(train: pd.DataFrame, target: str) -> list[dict[str, Any]]:
    """What a prediction request must send: one entry per feature, learned from training rows.

    ``missing_in_training`` records whether the training rows had the feature missing: serving warns
    about a missing value the model never saw missing. Whether a feature may be missing at all
    (``nullable``) depends on the fitted pipeline (:func:`stepml.onnx_export.with_nullable`).

    A date column (:func:`stepml.columns.date_format`) is one entry of kind ``date`` with its
    ``format`` and ``parts`` (the model's features are the parts, see
    :func:`stepml.dateparts.model_features`), and its ``earliest`` and ``latest`` values as written.
    """
    schema: list[dict[str, Any]] = []
    for name in train.columns:
        if name == target:
            continue
        series = train[name]
        found = date_format(series)
        if found is not None:
            schema.append(_date_entry(name, series, found))
            continue
        entry: dict[str, Any] = {"name": name, "kind": column_kind(series), "required": True,
                                 "missing_in_training": bool(series.isna().any())}
        if entry["kind"] == "numeric":
            entry["min"] = float(series.min()) if series.notna().any() else None
            entry["max"] = float(series.max()) if series.notna().any() else None
        else:
            entry["categories"] = sorted(str(v) for v in series.dropna().unique())
        schema.append(entry)
    taken = {str(c) for c in train.columns}
    clash = [f["name"] for f in dateparts.model_features(schema) if "source" in f and f["name"] in taken]
    if clash:
        raise DataError(
            f"column {clash[0]!r} has the name of a part derived from date column "
            f"{clash[0].rsplit('.', 1)[0]!r}: rename it, or list one of them in drop_columns"
        )
    return schema


def _date_entry(name: str, series: pd.Series, found: dateparts.DateFormat) -> dict[str, Any]:
    values = series.tolist()
    derived = dateparts.column_parts(values, found.format, found.parts)
    readable = ~np.isnan(derived).any(axis=1)
    entry: dict[str, Any] = {"name": name, "kind": "date", "format": found.format, "parts": list(found.parts),
                             "required": True, "missing_in_training": bool(not readable.all()),
                             "earliest": None, "latest": None}
    if readable.any():
        rows = np.flatnonzero(readable)
        order = np.lexsort(derived[rows].T[::-1])  # by year, then month, day...
        entry["earliest"], entry["latest"] = str(values[rows[order[0]]]), str(values[rows[order[-1]]])
    return entry


def ignored_columns(
    frame: pd.DataFrame, schema: list[dict[str, Any]], target: str, config: DatasetConfig,
    ids: Sequence[str] | None = None,
) -> list[dict[str, str]]:
    """The upload's columns that are not model inputs, each with why: a prediction request may carry
    them (a row as it stands in the CSV) and the API ignores them. ``ids``: the id-like columns of
    ``frame`` when already found (:func:`stepml.columns.identifier_columns`)."""
    features = {f["name"] for f in schema}
    id_like = set(identifier_columns(frame, target, config) if ids is None else ids)
    ignored = []
    for name in map(str, frame.columns):
        if name in features:
            continue
        if name == target:
            reason = "target"
        elif name in config.drop_columns:
            reason = "drop_columns"
        elif name in config.id_columns:
            reason = "id_columns"
        elif name in id_like:
            reason = "id"
        else:
            reason = "not a model input"
        ignored.append({"name": name, "reason": reason})
    return ignored


#: How a missing categorical value reaches the pipeline: an empty string, a category of its own.
#: (ONNX string tensors cannot hold None, and skl2onnx's imputers only replace a string marker.)
MISSING_CATEGORY = ""


def to_model_frame(frame: pd.DataFrame, schema: list[dict[str, Any]]) -> pd.DataFrame:
    """Columns in schema order with the dtypes the pipeline was fitted on (text or float).

    Missing numbers are NaN (the pipeline imputes them); missing text is :data:`MISSING_CATEGORY`.
    A date column becomes its parts (:func:`stepml.dateparts.model_features`), derived by
    :func:`stepml.dateparts.column_parts`, as serving derives them; unreadable dates are NaN.
    """
    columns: dict[str, Any] = {}
    for entry in schema:
        series = frame[entry["name"]]
        if entry["kind"] == "date":
            values = [v if isinstance(v, str) else None for v in series.tolist()]
            derived = dateparts.column_parts(values, entry["format"], entry["parts"])
            for index, part in enumerate(entry["parts"]):
                columns[dateparts.derived_name(entry["name"], part)] = derived[:, index]
        elif entry["kind"] == "numeric":
            # text (the Spark path's executors read a chunk's numbers as the CSV wrote them) is read
            # as the upload's parse reads it: "$1,234" is 1234 (stepml.cells.number)
            columns[entry["name"]] = as_numbers(series)
        elif isinstance(series.dtype, pd.CategoricalDtype):
            columns[entry["name"]] = _category_text(series)
        else:
            columns[entry["name"]] = series.map(lambda v: MISSING_CATEGORY if pd.isna(v) else str(v)).astype(
                "object"
            )
    # each column its own block (copy=False): joining them into one block of objects and one of
    # floats cost 440 MB in passing at 1.6M rows (Train's peak), and a copy of every column after
    return pd.DataFrame(columns, index=frame.index, copy=False)


def numbers_as_floats(frame: pd.DataFrame, schema: list[dict[str, Any]]) -> None:
    """Hold ``frame``'s numeric features as the model reads them (float64, unreadable values NaN),
    in place and a column at a time: :func:`to_model_frame` then shares these columns instead of
    copying them (77 MB at 1.6M rows and six numbers, in Train's peak)."""
    for entry in schema:
        if entry["kind"] == "numeric" and frame[entry["name"]].dtype != np.float64:
            frame[entry["name"]] = as_numbers(frame[entry["name"]])


def _category_text(series: pd.Series) -> pd.Series:
    """A categorical column as the encoders read it: each category as its text, missing values as
    :data:`MISSING_CATEGORY`, still one small code per cell (the encoders see the same strings as
    from objects; a pointer per cell was 100 MB at 1.6M rows and 8 text columns)."""
    names = [str(c) for c in series.cat.categories]
    codes = series.cat.codes.to_numpy()  # -1: missing
    if len(set(names)) == len(names) and MISSING_CATEGORY not in names:
        # the smallest signed codes that also hold the marker's, which takes -1's place
        width = next(t for t in (np.int8, np.int16, np.int32, np.int64) if len(names) <= np.iinfo(t).max)
        codes = codes.astype(width)  # a copy: the frame's own codes stay as they are
        codes[codes < 0] = len(names)
        dtype = pd.CategoricalDtype([*names, MISSING_CATEGORY])
        return pd.Series(pd.Categorical.from_codes(codes, dtype=dtype), index=series.index)
    # two categories with one text (1 and "1"), or the marker itself a category: as objects
    lookup = np.asarray([*names, MISSING_CATEGORY], dtype=object)
    return pd.Series(lookup[codes], index=series.index)


def class_labels(target: pd.Series) -> pd.Series:
    """Class labels as the user wrote them: whole numbers stay numbers, anything else is text."""
    numeric = pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target)
    if numeric and (target == target.round()).all():
        return target.astype("int64")
    return target.astype(str)
