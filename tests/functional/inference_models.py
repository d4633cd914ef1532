"""Small ONNX models for the API tests, exported from pipelines trained here on synthetic rows."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd

SCHEMA: list[dict[str, Any]] = [
    {"name": "age", "kind": "numeric", "required": True, "min": 17.0, "max": 90.0},
    {"name": "hours-per-week", "kind": "numeric", "required": False, "min": 1.0, "max": 99.0},
    {"name": "job", "kind": "categorical", "required": True, "categories": ["a", "b", "c"]},
    {"name": "city", "kind": "categorical", "required": False, "categories": ["x", "y"]},
]


def record(**overrides: Any) -> dict[str, Any]:
    """A valid request record, with ``overrides``."""
    return {"age": 39, "hours-per-week": 40, "job": "a", "city": "x", **overrides}


def _train(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = 400
    frame = pd.DataFrame(
        {
            "age": rng.integers(17, 91, rows).astype(float),
            "hours-per-week": rng.integers(1, 100, rows).astype(float),
            "job": rng.choice(["a", "b", "c"], rows),
            "city": rng.choice(["x", "y", ""], rows),
        }
    )
    frame.loc[::7, "hours-per-week"] = np.nan
    signal = frame["age"] / 10 + (frame["job"] == "b") * 3 + rng.normal(0, 1, rows)
    frame["income"] = np.where(signal > 6, ">50K", "<=50K")
    frame["value"] = signal * 1000
    return frame


def _pipeline(estimator: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    columns = ColumnTransformer(
        [
            ("categorical", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["job", "city"]),
            ("numeric", SimpleImputer(strategy="median"), ["age", "hours-per-week"]),
        ]
    )
    return Pipeline([("columns", columns), ("model", estimator)])


@functools.cache
def classifier_onnx(seed: int = 0) -> bytes:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from stepml.onnx_export import export
    from stepml.preprocessing import to_model_frame

    frame = _train(seed)
    pipeline = _pipeline(HistGradientBoostingClassifier(max_iter=30, random_state=seed))
    pipeline.fit(to_model_frame(frame, SCHEMA), frame["income"])
    return export(pipeline, SCHEMA, "classification")


@functools.cache
def regressor_onnx(seed: int = 0) -> bytes:
    from sklearn.ensemble import RandomForestRegressor

    from stepml.onnx_export import export
    from stepml.preprocessing import to_model_frame

    frame = _train(seed)
    pipeline = _pipeline(RandomForestRegressor(n_estimators=10, random_state=seed))
    pipeline.fit(to_model_frame(frame, SCHEMA), frame["value"])
    return export(pipeline, SCHEMA, "regression")


def per_feature_onnx(model: bytes) -> bytes:
    """``model`` as exports made it before the input blocks: one ``[rows, 1]`` input per feature.

    Undoes the export's block inputs (the Split / Identity nodes in front of the graph), so the
    tests can serve a version registered by an older stepml. A node the export's folding left
    reading a whole block (e.g. the numbers' IsNaN) reads it joined again from the features.
    """
    import json

    import onnx
    from onnx import helper

    from stepml.onnx_model import META_INPUTS, NUMERIC_INPUT, TEXT_INPUT

    loaded = onnx.load_from_string(model)
    graph = loaded.graph
    blocks = {i.name: i.type.tensor_type.elem_type for i in graph.input}
    assert set(blocks) <= {NUMERIC_INPUT, TEXT_INPUT}
    features = json.loads(next(p.value for p in loaded.metadata_props if p.key == META_INPUTS))
    front = [node for node in graph.node if node.op_type in ("Split", "Identity") and node.input[0] in blocks]
    for node in front:
        graph.node.remove(node)
    for initializer in [i for i in graph.initializer if i.name.endswith("_sizes")]:
        graph.initializer.remove(initializer)
    read = {name for node in graph.node for name in node.input}
    for block in reversed([b for b in blocks if b in read]):
        graph.node.insert(0, helper.make_node("Concat", features[block], [block], axis=1, name=f"{block}_joined"))
    del graph.input[:]
    graph.input.extend(
        helper.make_tensor_value_info(name, element, [None, 1]) for block, element in blocks.items()
        for name in features[block]
    )
    onnx.checker.check_model(loaded)
    return loaded.SerializeToString()
