"""Check an exported ONNX model against scikit-learn's outputs (numpy + onnxruntime only).

The Train stage exports the pipeline and records scikit-learn's outputs on the whole test split
(:func:`stepml.onnx_export.reference`); the "Verify ONNX export" stage runs the graph on the same
rows with onnxruntime and refuses the model when they disagree. It runs in its own function on the
inference layer: scikit-learn + pandas and onnxruntime together don't fit one Lambda package.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from stepml import keys
from stepml.errors import ModelExportError
from stepml.onnx_model import (
    MISSING_CATEGORY,
    NUMERIC_INPUT,
    PREDICTION,
    PROBABILITIES,
    TEXT_INPUT,
    feeds,
    per_feature,
)
from stepml.settings import Settings
from stepml.storage import S3Store

#: Largest difference allowed between an ONNX and a scikit-learn probability.
PROBABILITY_TOLERANCE = 1e-4
#: Largest relative difference allowed between ONNX and scikit-learn regression values.
REGRESSION_RTOL = 1e-4
#: Share of rows that may differ more when the model's trees compare in float32 (XGBoost, the forests:
#: see :mod:`stepml.onnx_export`). A reference marked ``exact`` (trees in float64: HistGradientBoosting,
#: LightGBM; linear models) allows none.
MAX_DIVERGENT_SHARE = 0.001


@dataclass(frozen=True)
class Verification:
    """How closely the ONNX graph matched scikit-learn on one data split."""

    rows: int
    rows_with_missing: int
    max_abs_difference: float
    tolerance: float
    class_mismatches: int = 0
    divergent_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "divergent_rows": self.divergent_rows,
            "rows": self.rows,
            "rows_with_missing": self.rows_with_missing,
            "max_abs_difference": self.max_abs_difference,
            "tolerance": self.tolerance,
            "class_mismatches": self.class_mismatches,
        }


def compare(model_bytes: bytes, reference: dict[str, Any], schema: list[dict[str, Any]]) -> Verification:
    """Compare the ONNX model with scikit-learn's outputs in ``reference`` (see
    :func:`stepml.onnx_export.reference`) on every row of the split.

    A row diverges when a probability (classification) or the value (regression) differs by more
    than the tolerance, or the class differs where scikit-learn's top two probabilities are not
    within tolerance of each other. Raises :class:`ModelExportError` naming the first divergent
    row when more than :func:`allowed_divergent_rows` do: none when the reference is ``exact``
    (:func:`stepml.onnx_export.reference`).
    """
    import onnxruntime as ort

    task = reference["task"]
    columns = reference["columns"]
    inputs = feeds(columns, schema)
    try:
        session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
        if not {NUMERIC_INPUT, TEXT_INPUT} & {i.name for i in session.get_inputs()}:
            inputs = per_feature(inputs, schema)  # exported before the inputs were blocks
        session.run(None, {name: value[:1] for name, value in inputs.items()})
    except Exception as exc:  # onnxruntime's own error classes
        raise ModelExportError(f"onnxruntime cannot run the exported model: {exc}"[:2000]) from exc
    rows = len(reference["expected"])
    missing = sum(
        any(columns[f["name"]][row] in (None, MISSING_CATEGORY) for f in schema) for row in range(rows)
    )
    flipped = np.zeros(rows, dtype=bool)
    if task == "classification":
        expected = np.asarray(reference["expected"], dtype=np.float64)
        got = np.asarray(session.run([PROBABILITIES], inputs)[0], dtype=np.float64)
        difference = np.abs(got - expected).max(axis=1)
        tolerance = PROBABILITY_TOLERANCE
        ranked = np.sort(expected, axis=1)
        margin = ranked[:, -1] - (ranked[:, -2] if ranked.shape[1] > 1 else 0.0)
        flipped = (got.argmax(axis=1) != expected.argmax(axis=1)) & (margin > tolerance)
    else:
        expected = np.asarray(reference["expected"], dtype=np.float64).reshape(-1, 1)
        got = np.asarray(session.run([PREDICTION], inputs)[0], dtype=np.float64).reshape(-1, 1)
        difference = np.abs(got - expected)[:, 0]
        tolerance = REGRESSION_RTOL * max(1.0, float(np.abs(expected).max()))
    divergent = (difference > tolerance) | flipped
    result = Verification(
        rows=rows, rows_with_missing=missing, max_abs_difference=float(difference.max()),
        tolerance=tolerance, class_mismatches=int(flipped.sum()), divergent_rows=int(divergent.sum()),
    )
    allowed = allowed_divergent_rows(rows, exact=bool(reference.get("exact", False)))
    if result.divergent_rows > allowed:
        row = int(np.flatnonzero(divergent)[0])
        raise ModelExportError(
            f"the ONNX model disagrees with scikit-learn on {result.divergent_rows} of {rows} hold-out "
            f"rows (at most {allowed} may differ; {result.class_mismatches} "
            f"predict another class); largest difference {result.max_abs_difference:.6g}, tolerance "
            f"{tolerance:.3g}; e.g. row {row}: scikit-learn {np.round(expected[row], 6).tolist()}, "
            f"ONNX {np.round(got[row], 6).tolist()}"
        )
    return result


def allowed_divergent_rows(rows: int, exact: bool = False) -> int:
    """How many rows of a split may diverge: none for a model that compares in float64 (``exact``),
    else a share for float32 thresholds (see :mod:`stepml.onnx_export`)."""
    return 0 if exact else max(1, int(rows * MAX_DIVERGENT_SHARE))


def verify_export(state: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Stage: run the staged ONNX model on the test split and compare it with scikit-learn."""
    store = S3Store(settings)
    schema = store.get_json(state["schema_key"])
    reference = json.loads(store.get_bytes(state["onnx_reference_key"]))
    result = compare(store.get_bytes(state["artifacts"]["model.onnx"]), reference, schema)
    return {**state, "onnx_verification": result.to_dict()}


def reference_key(dataset: str, run_id: str) -> str:
    return keys.staging(dataset, run_id, "onnx_reference.json")
