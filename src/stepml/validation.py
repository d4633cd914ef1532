"""Read an uploaded CSV and decide whether it can be trained on.

Blocking problems raise :class:`~stepml.errors.DataError` with a message naming the file and the
column or line; everything else becomes a warning in the validation report.
"""

from __future__ import annotations

import io
from typing import Any

import pandas as pd

from stepml.config import DatasetConfig
from stepml.errors import DataError

#: Cell values read as missing: Adult writes '?', others write NA, N/A, null or leave it empty.
MISSING_MARKERS = ["?", "", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]
#: A target with at most this many distinct values is a class label (unless config says otherwise).
MAX_CLASSES = 20


def read_csv(data: bytes, source: str) -> pd.DataFrame:
    """Parse ``data`` as a CSV with a header row; reject what is not one, naming the problem."""
    if not data.strip():
        raise DataError(f"{source} is empty")
    head = data[:65536]
    if b"\x00" in head:
        raise DataError(f"{source} is not a CSV file (it contains binary data)")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        try:
            head.decode("latin-1")
        except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes any byte
            raise DataError(f"{source} is not a text file") from exc
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            na_values=MISSING_MARKERS,
            keep_default_na=False,
            skipinitialspace=True,
            encoding_errors="replace",
        )
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{source} has no header row") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{source} is not a well-formed CSV: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.shape[1] == 1:
        header = frame.columns[0]
        for delimiter, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if delimiter in header:
                raise DataError(
                    f"{source} looks delimited by {name}, not commas: save it as a comma-separated CSV"
                )
        raise DataError(f"{source} has a single column ({header!r}): nothing to predict it from")
    if frame.empty:
        raise DataError(f"{source} has a header but no data rows")
    return frame


def resolve_target(frame: pd.DataFrame, config: DatasetConfig, source: str) -> str:
    """The target column: the config's, else the last column."""
    target = config.target or str(frame.columns[-1])
    if target not in frame.columns:
        raise DataError(
            f"{source} has no target column {target!r}; its columns are: {', '.join(frame.columns)}"
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


def column_kind(series: pd.Series) -> str:
    return "numeric" if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series) else "categorical"


def validate(frame: pd.DataFrame, config: DatasetConfig, source: str) -> dict[str, Any]:
    """Check ``frame`` against the blocking rules and describe it; returns the report."""
    target = resolve_target(frame, config, source)
    missing_drop = [c for c in config.drop_columns if c not in frame.columns]
    if missing_drop:
        raise DataError(f"config drop_columns names column(s) not in {source}: {', '.join(missing_drop)}")
    y = frame[target]
    if y.isna().all():
        raise DataError(f"{source}: target column {target!r} has no values (all missing)")
    task = infer_task(y, config)
    if task == "classification" and y.nunique(dropna=True) < 2:
        raise DataError(
            f"{source}: target column {target!r} has a single class ({y.dropna().iloc[0]!r}); "
            "a classifier needs at least two"
        )
    if task == "regression" and not pd.api.types.is_numeric_dtype(y):
        raise DataError(f"{source}: target column {target!r} is not numeric, so it cannot be regressed")
    if len(frame) < config.min_rows:
        raise DataError(
            f"{source} has {len(frame)} data rows; at least {config.min_rows} are needed (config min_rows)"
        )
    features = [c for c in frame.columns if c != target and c not in config.drop_columns]
    if not features:
        raise DataError(f"{source} has no feature columns besides the target {target!r}")

    warnings: list[str] = []
    columns: list[dict[str, Any]] = []
    for name in frame.columns:
        series = frame[name]
        missing = int(series.isna().sum())
        unique = int(series.nunique(dropna=True))
        info: dict[str, Any] = {
            "name": name,
            "kind": column_kind(series),
            "missing": missing,
            "unique": unique,
            "role": "target" if name == target else ("dropped" if name in config.drop_columns else "feature"),
        }
        columns.append(info)
        if name == target:
            continue
        if unique <= 1:
            warnings.append(f"column {name!r} is constant")
        elif info["kind"] == "categorical" and unique == len(series.dropna()) and len(series) > 50:
            warnings.append(f"column {name!r} looks like an id (every value is different)")
        if missing:
            warnings.append(f"column {name!r} has {missing} missing value(s)")
    missing_target = int(y.isna().sum())
    if missing_target:
        warnings.append(f"{missing_target} row(s) have no target value and will be dropped")
    duplicates = int(frame.duplicated().sum())
    if duplicates:
        warnings.append(f"{duplicates} duplicate row(s)")
    if task == "classification":
        distribution = {str(k): int(v) for k, v in y.value_counts(dropna=True).items()}
    else:
        described = y.describe()
        distribution = {k: float(described[k]) for k in ("mean", "std", "min", "50%", "max")}
    return {
        "source": source,
        "rows": int(len(frame)),
        "columns": columns,
        "target": target,
        "task": task,
        "task_inferred": config.task is None,
        "target_distribution": distribution,
        "duplicate_rows": duplicates,
        "rows_with_missing": int(frame.isna().any(axis=1).sum()),
        "warnings": warnings,
    }
