"""Champion and candidate on the same rows: what the quality gate compares.

Two test splits of one table differ by several points of accuracy on their own (the same rows
shuffled scored 0.65 to 0.77 balanced accuracy), so the gate compares the candidate with the
champion on the candidate's test rows - the rows the candidate never saw - scoring the champion's
pipeline there (:func:`compare_on_test_rows`).

A re-upload of a table usually holds rows the champion trained on, and a model scores its own
training rows better than new ones: the comparison would then favour the champion. Every version
registered by Evaluate therefore records a fingerprint of its training rows
(:data:`stepml.keys.VERSION_TRAINING_ROWS`, one hash a row), and the comparison leaves out the
rows the champion trained on when at least :data:`MIN_UNSEEN_ROWS` remain. When fewer remain (the
same table uploaded again) or the champion has no fingerprint (registered before it), all the
candidate's rows are compared and the reason says so: the comparison then leans towards keeping
the champion, which is the safe side.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np
import pandas as pd

from stepml import keys
from stepml.contracts import SameRowsComparison, VersionMeta

#: Fewest test rows unseen by the champion worth comparing on; with fewer, all are compared.
MIN_UNSEEN_ROWS = 30

_log = logging.getLogger(__name__)


def row_fingerprints(frame: pd.DataFrame, columns: list[str], numeric: set[str]) -> np.ndarray:
    """One 64-bit hash per row of ``frame[columns]``, equal for equal values whatever the upload's
    dtypes (a whole-number column read as integers in one upload and floats in another, text as
    categories or objects). ``numeric``: the columns compared as numbers; the others as text."""
    combined = np.zeros(len(frame), dtype=np.uint64)
    for position, name in enumerate(columns):
        series = frame[name]
        if name in numeric:
            values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            values = np.where(np.isnan(values), np.nan, values + 0.0)  # one NaN, and -0.0 as 0.0
            hashed = pd.util.hash_array(values)
        else:
            codes = series.astype("category") if not isinstance(series.dtype, pd.CategoricalDtype) else series
            categories = pd.util.hash_array(np.asarray(codes.cat.categories.astype(str), dtype=object))
            missing = pd.util.hash_array(np.array(["\x00missing"], dtype=object))[0]
            table = np.append(categories, missing)
            hashed = table[codes.cat.codes.to_numpy()]  # code -1 (missing) picks the last entry
        with np.errstate(over="ignore"):
            combined = combined * np.uint64(1_000_003) + hashed + np.uint64(position)
    return combined


def fingerprint_columns(schema: list[dict[str, Any]], target: str, task: str) -> tuple[list[str], set[str]]:
    """The columns a version's rows are fingerprinted on (its features, then the target) and
    which of them are numbers."""
    columns = [f["name"] for f in schema] + [target]
    numeric = {f["name"] for f in schema if f["kind"] == "numeric"}
    if task == "regression":
        numeric.add(target)
    return columns, numeric


def training_rows(frame: pd.DataFrame, schema: list[dict[str, Any]], target: str, task: str) -> bytes:
    """The artifact :data:`~stepml.keys.VERSION_TRAINING_ROWS`: the sorted distinct fingerprints
    of the training rows (8 bytes a row)."""
    columns, numeric = fingerprint_columns(schema, target, task)
    return np.unique(row_fingerprints(frame, columns, numeric)).astype("<u8").tobytes()


def compare_on_test_rows(
    registry: Any,
    champion: VersionMeta,
    candidate: Any,
    test_frame: pd.DataFrame,
    schema: list[dict[str, Any]],
    task: str,
    target: str,
    metric: str,
    candidate_value: float | None = None,
) -> SameRowsComparison:
    """Both models' ``metric`` on the same rows of ``test_frame`` (the candidate's scored test
    rows), without those the champion trained on when enough remain. Never raises because of the
    champion: when it cannot be scored here, the values are None and ``note`` says why (the gate
    then compares with its registered value). ``candidate_value``: the candidate's ``metric`` on all of
    ``test_frame`` as Evaluate measured it, not predicted again when all the rows are compared."""
    result: SameRowsComparison = {"version": champion["version"], "metric": metric, "rows": None,
                                  "candidate_value": None, "champion_value": None,
                                  "champion_trained_on": None, "unseen_only": False, "note": ""}
    name = f"champion v{champion['version']}"
    champion_schema: list[dict[str, Any]] = [dict(f) for f in champion.get("schema") or []]
    if champion.get("task") != task or champion.get("target") != target:
        result["note"] = (f"{name} predicts {champion.get('target')!r} ({champion.get('task')}), the candidate "
                          f"{target!r} ({task})")
        return result
    kinds = {f["name"]: f["kind"] for f in schema}
    missing = [f["name"] for f in champion_schema if f["name"] not in test_frame.columns]
    if missing:
        result["note"] = f"{name} needs {_names(missing)}, not in this upload's test split"
        return result
    changed = [f["name"] for f in champion_schema if f["name"] in kinds and kinds[f["name"]] != f["kind"]]
    if changed:
        result["note"] = f"{name} read {_names(changed)} as another kind of column"
        return result
    try:
        pipeline = _load_pipeline(registry, champion)
    except Exception as error:  # noqa: BLE001 - never fail Evaluate because of the champion
        _log.warning("champion not loaded", extra={"version": champion["version"], "error": repr(error)})
        result["note"] = f"{name} could not be loaded here ({type(error).__name__}: {str(error)[:160]})"
        return result
    rows = test_frame
    seen = _seen_mask(registry, champion, test_frame, target, task)
    if seen is not None:
        trained_on = int(seen.sum())
        result["champion_trained_on"] = trained_on
        unseen = len(test_frame) - trained_on
        if trained_on and unseen >= MIN_UNSEEN_ROWS:
            rows, result["unseen_only"] = test_frame[~seen], True
        elif trained_on:
            result["note"] = (f"{name} trained on {trained_on:,} of these {len(test_frame):,} rows (only {unseen:,} "
                              f"unseen by both, fewer than {MIN_UNSEEN_ROWS}): the comparison favours the champion")
    else:
        result["note"] = (f"{name} recorded no fingerprint of its training rows: it may have trained on some of "
                          "these rows, which favours it")
    try:
        result["champion_value"] = _score(pipeline, rows, champion_schema, task, target, metric)
        result["candidate_value"] = (candidate_value if candidate_value is not None and rows is test_frame
                                     else _score(candidate, rows, schema, task, target, metric))
    except Exception as error:  # noqa: BLE001 - a champion that fails on these rows is not compared here
        _log.warning("champion not scored", extra={"version": champion["version"], "error": repr(error)})
        result["champion_value"] = result["candidate_value"] = None
        result["note"] = f"{name} could not be scored on these rows ({type(error).__name__}: {str(error)[:160]})"
        return result
    result["rows"] = len(rows)
    return result


def _names(columns: list[str]) -> str:
    shown = ", ".join(repr(c) for c in columns[:5])
    return shown + (f" and {len(columns) - 5} more" if len(columns) > 5 else "")


def _load_pipeline(registry: Any, champion: VersionMeta) -> Any:
    """The champion's scikit-learn pipeline, refused unless it matches its recorded SHA-256 (a
    Spark-trained XGBoost pipeline needs xgboost, which the Lambda layer lacks: ImportError)."""
    import joblib

    return joblib.load(io.BytesIO(registry.load_artifact(champion, "model.joblib")))


def _seen_mask(registry: Any, champion: VersionMeta, frame: pd.DataFrame, target: str, task: str) -> np.ndarray | None:
    """Which rows of ``frame`` the champion trained on, from its fingerprint; None without one."""
    if keys.VERSION_TRAINING_ROWS not in (champion.get("artifacts") or {}):
        return None
    try:
        seen = np.frombuffer(registry.load_artifact(champion, keys.VERSION_TRAINING_ROWS), dtype="<u8")
    except Exception as error:  # noqa: BLE001 - without it, the note says the rows may overlap
        _log.warning("champion fingerprint not read", extra={"version": champion["version"], "error": repr(error)})
        return None
    columns, numeric = fingerprint_columns([dict(f) for f in champion["schema"]], target, task)
    return np.isin(row_fingerprints(frame, columns, numeric), seen)


def _score(pipeline: Any, rows: pd.DataFrame, schema: list[dict[str, Any]], task: str, target: str,
           metric: str) -> float | None:
    from threadpoolctl import threadpool_limits

    from stepml import recipes
    from stepml.evaluation import metric_value, predict
    from stepml.preprocessing import class_labels, to_model_frame

    with threadpool_limits(limits=recipes.OPENMP_THREADS, user_api="openmp"):
        predictions = predict(pipeline, to_model_frame(rows, schema), task)
    truth = class_labels(rows[target]) if task == "classification" else rows[target]
    classes = getattr(pipeline, "classes_", None) if task == "classification" else None
    value = metric_value(task, metric, truth, predictions.predicted, predictions.probabilities, classes)
    return value if np.isfinite(value) else None
