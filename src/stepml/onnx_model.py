"""The contract between an exported ONNX model and the code that serves it (numpy only).

An exported model takes two inputs, one block per kind of feature, columns in the order of the
feature schema: :data:`NUMERIC_INPUT`, a float64 ``[rows, numeric features]`` tensor (a missing
value is NaN, imputed inside the graph when the pipeline imputes; a date column's parts, derived in
front of the graph by :mod:`stepml.dateparts`, are numeric features), and :data:`TEXT_INPUT`, a string
``[rows, categorical features]`` tensor (a missing value is :data:`MISSING_CATEGORY`). A model
without features of one kind has no input for it. The graph splits the blocks into its features
itself: two inputs cost onnxruntime far less per request than one per feature (Adult has 14), and
the request path builds two arrays instead of fourteen. Models exported before took one
``[rows, 1]`` input per feature, named after it; :func:`input_builder` serves both.

Outputs are :data:`PREDICTION` (regression) or :data:`PROBABILITIES` (classification: one column
per class, in the order of the ``classes`` recorded in the model's metadata). Serving and the
export's verification build their inputs with the same functions, so what is verified at training
time is what is served.

This module must stay light: the inference function imports it (no pandas, no scikit-learn).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from stepml import dateparts, recipes

#: What a missing categorical value becomes in a string input tensor: the empty string, a category
#: of its own, exactly as :data:`stepml.preprocessing.MISSING_CATEGORY` in training (a test checks).
MISSING_CATEGORY = ""
#: Input names of the exported graph: the numeric block and the categorical (string) block.
NUMERIC_INPUT = "stepml_numeric"
TEXT_INPUT = "stepml_categorical"
#: Output names of the exported graph.
PREDICTION = "prediction"
PROBABILITIES = "probabilities"
#: Keys of the ONNX model's metadata_props.
META_TASK = "stepml.task"
META_CLASSES = "stepml.classes"
META_FEATURES = "stepml.features"
META_IMPUTED = "stepml.imputed"
#: ``{input name: [feature, ...]}``: which feature each column of an input block is.
META_INPUTS = "stepml.inputs"
#: Recipes that train only on complete rows (they drop rows with a missing value): their models
#: never learned what a missing value means, so a request may not leave a feature out.
RECIPES_ON_COMPLETE_ROWS = recipes.COMPLETE_ROWS_ONLY

Feeds = dict[str, np.ndarray]


def block_features(schema: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The features of each input block, in schema order (a block without features is left out).

    A date column's features are its parts, numbers (:func:`stepml.dateparts.model_features`).
    """
    features = dateparts.model_features(schema)
    blocks = {
        NUMERIC_INPUT: [f["name"] for f in features if f["kind"] == "numeric"],
        TEXT_INPUT: [f["name"] for f in features if f["kind"] != "numeric"],
    }
    return {name: names for name, names in blocks.items() if names}


def feeds(columns: Mapping[str, Sequence[Any] | np.ndarray], schema: list[dict[str, Any]]) -> Feeds:
    """ONNX inputs from column values (None or NaN for missing): one block per kind of feature.

    A date column's values are its strings as written: their parts are derived here, by
    :func:`stepml.dateparts.parts`, as serving derives them.
    """
    blocks = block_features(schema)
    result: Feeds = {}
    if NUMERIC_INPUT in blocks:  # numpy turns None into NaN for floats
        numeric: list[Any] = []
        for spec in schema:
            if spec["kind"] == "numeric":
                numeric.append(np.asarray(columns[spec["name"]], dtype=np.float64).reshape(-1, 1))
            elif spec["kind"] == "date":
                values = [dateparts.parts(v, spec["format"], spec["parts"]) for v in columns[spec["name"]]]
                numeric.append(np.array(values, dtype=np.float64).reshape(len(values), len(spec["parts"])))
        result[NUMERIC_INPUT] = np.ascontiguousarray(np.hstack(numeric))
    if TEXT_INPUT in blocks:
        texts = [[MISSING_CATEGORY if _missing(v) else str(v) for v in columns[name]] for name in blocks[TEXT_INPUT]]
        result[TEXT_INPUT] = np.array(texts, dtype=object).T.copy()
    return result


def feeds_from_rows(rows: Sequence[Mapping[str, Any]], schema: list[dict[str, Any]]) -> Feeds:
    """ONNX inputs from checked request rows (floats or None; strings or None; a date column's
    parts, as :func:`stepml.inputs.check_records` derived them, or None), as :func:`feeds`.

    The serving path: each block is built row-wise, already in the ``[rows, features]`` layout.
    """
    blocks = block_features(schema)
    result: Feeds = {}
    if NUMERIC_INPUT in blocks:  # numpy turns None into NaN for floats
        dates = {spec["name"]: len(spec["parts"]) for spec in schema if spec["kind"] == "date"}
        if dates:
            numeric = [spec for spec in schema if spec["kind"] in ("numeric", "date")]
            result[NUMERIC_INPUT] = np.array([_numbers(row, numeric, dates) for row in rows], dtype=np.float64)
        else:
            names = blocks[NUMERIC_INPUT]
            result[NUMERIC_INPUT] = np.array([[row[name] for name in names] for row in rows], dtype=np.float64)
    if TEXT_INPUT in blocks:
        names = blocks[TEXT_INPUT]
        result[TEXT_INPUT] = np.array(
            [[MISSING_CATEGORY if row[name] is None else row[name] for name in names] for row in rows], dtype=object
        )
    return result


def _numbers(row: Mapping[str, Any], specs: list[dict[str, Any]], dates: Mapping[str, int]) -> list[Any]:
    """One row of the numeric block: numbers, and each date column's parts (NaN when missing)."""
    values: list[Any] = []
    for spec in specs:
        value = row[spec["name"]]
        if spec["name"] in dates:
            values.extend((math.nan,) * dates[spec["name"]] if value is None else value)
        else:
            values.append(value)
    return values


def per_feature(blocks: Feeds, schema: list[dict[str, Any]]) -> Feeds:
    """The inputs of a model exported with one ``[rows, 1]`` input per feature, from the blocks."""
    result: Feeds = {}
    for block, names in block_features(schema).items():
        values = blocks[block]
        for index, name in enumerate(names):
            result[name] = np.ascontiguousarray(values[:, index : index + 1])
    return result


def input_builder(input_names: Sequence[str]) -> Callable[[Sequence[Mapping[str, Any]], list[dict[str, Any]]], Feeds]:
    """How to feed a model with these graph inputs from checked rows: blocks, or one per feature."""
    if NUMERIC_INPUT in input_names or TEXT_INPUT in input_names:
        return feeds_from_rows
    return lambda rows, schema: per_feature(feeds_from_rows(rows, schema), schema)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def model_classes(custom_metadata: Mapping[str, str]) -> list[Any] | None:
    """The class labels recorded in an exported classifier's metadata (None for a regressor)."""
    raw = custom_metadata.get(META_CLASSES)
    return None if raw is None else list(json.loads(raw))


def imputed_features(custom_metadata: Mapping[str, str]) -> list[str]:
    """Features the exported pipeline imputes itself: a request may leave them null."""
    return list(json.loads(custom_metadata.get(META_IMPUTED, "[]")))


def can_serve_missing(kind: str, name: str, imputed: Sequence[str] | set[str], recipe: str | None) -> bool:
    """Whether the exported pipeline takes this feature missing.

    A number: when the graph imputes it. A category: a missing one is a category of its own (the
    encoders learned it when training had it, and treat it as an unseen category otherwise) -
    unless the recipe trains on complete rows only.
    """
    if kind == "numeric":
        return name in imputed
    return recipe not in RECIPES_ON_COMPLETE_ROWS


def serves_missing(spec: Mapping[str, Any], imputed: Sequence[str] | set[str], recipe: str | None) -> bool:
    """:func:`can_serve_missing` for a schema entry: a date column when the graph imputes every
    one of its parts (a missing date gives NaN parts)."""
    if spec["kind"] == "date":
        return all(f["name"] in imputed for f in dateparts.model_features([spec]))
    return can_serve_missing(spec["kind"], spec["name"], imputed, recipe)


def serving_schema(
    schema: Sequence[Mapping[str, Any]], imputed: Sequence[str], recipe: str | None = None
) -> list[dict[str, Any]]:
    """The feature schema as served: per feature, whether it may be missing (``nullable``, and
    ``required`` its opposite) and whether it was missing in training (None: not recorded).

    Versions trained since ``nullable`` was recorded keep it; older ones get it from the graph's
    imputed features and the recipe (:func:`can_serve_missing`).
    """
    optional = set(imputed)
    served = []
    for spec in schema:
        nullable = spec.get("nullable")
        if nullable is None:
            nullable = serves_missing(spec, optional, recipe)
        served.append({**spec, "required": not nullable, "nullable": bool(nullable),
                       "missing_in_training": spec.get("missing_in_training")})
    return served


def missing_refusal(recipe: str | None) -> str:
    """Why a request's missing value is refused, for a feature the model cannot serve missing."""
    if recipe in RECIPES_ON_COMPLETE_ROWS:
        return (f"missing required field: recipe {recipe!r} trains only on complete rows (it drops rows "
                "with a missing value), so this model cannot serve a missing value; send one")
    return "missing required field"
