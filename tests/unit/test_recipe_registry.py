"""The recipe registry: every registered recipe trains, exports to ONNX and serves a request on a
tiny frame, and everything that lists recipes (config, layer, docs, bench) reads the registry."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from stepml import recipes
from stepml.config import DatasetConfig
from stepml.errors import ConfigError, RequestError
from stepml.preprocessing import clean, feature_schema
from stepml.training import fit
from tests.conftest import ROOT

#: Small estimators: the test checks the plumbing, not the model's quality.
FAST_PARAMS = {"auto": {"max_iter": 10}, "seed-a": {"n_estimators": 5}, "seed-b": {"n_estimators": 5}}
CASES = [(name, task) for name, recipe in recipes.RECIPES.items() for task in recipe.tasks]


def tiny_frame(task: str, rows: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    x = rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], rows)
    frame = pd.DataFrame({"x": x, "colour": colour})
    frame["y"] = np.where(x + (colour == "red") > 0.3, "yes", "no") if task == "classification" else x * 3 + 1
    frame.loc[::9, "x"] = np.nan
    frame.loc[::11, "colour"] = np.nan
    return frame


def test_every_recipe_has_fast_params_here() -> None:
    assert set(FAST_PARAMS) >= set(recipes.RECIPES), "a new recipe needs an entry in FAST_PARAMS"


@pytest.mark.parametrize(("name", "task"), CASES)
def test_every_recipe_trains_exports_and_serves(name: str, task: str) -> None:
    from stepml.inputs import InputContract, check_records
    from stepml.onnx_export import export, verify, with_nullable
    from stepml.onnx_model import (
        PREDICTION,
        PROBABILITIES,
        feeds_from_rows,
        missing_refusal,
        serving_schema,
    )

    recipe = recipes.get(name)
    if recipe.missing_libraries():
        pytest.skip(f"{name} needs {recipe.libraries}, not installed here")
    onnxruntime = pytest.importorskip("onnxruntime")
    config = DatasetConfig.from_dict({"recipe": name, "params": FAST_PARAMS[name]})
    frame = tiny_frame(task)
    train = clean(frame, "y", config)
    assert train.isna().any(axis=None) is not recipe.complete_rows_only
    schema = feature_schema(train, "y")
    pipeline = fit(train, "y", schema, task, config)

    # Given the exported graph, when it runs on every training row, then it agrees with scikit-learn
    model = export(pipeline, schema, task)
    checked = verify(model, pipeline, train, schema, task)
    assert checked.rows == len(train)

    # ... and the serving path (contract, row checks, feeds) predicts a request as the API would
    session = onnxruntime.InferenceSession(model)
    served = serving_schema(with_nullable(schema, pipeline, name), [], name)
    contract = InputContract.build(served, [], missing_refusal(name))
    rows, _ = check_records(json.loads('[{"x": 0.5, "colour": "red"}, {"x": -1.0, "colour": "blue"}]'), contract)
    output = session.run([PROBABILITIES if task == "classification" else PREDICTION], feeds_from_rows(rows, served))[0]
    expected = pipeline.predict_proba if task == "classification" else pipeline.predict
    reference = expected(pd.DataFrame({"x": [0.5, -1.0], "colour": ["red", "blue"]}))
    np.testing.assert_allclose(output.reshape(reference.shape), reference, rtol=1e-4, atol=1e-4)

    # A request without a category is served, unless the recipe never saw a missing value in training
    if recipe.complete_rows_only:
        with pytest.raises(RequestError, match="trains only on complete rows"):
            check_records([{"x": 0.1, "colour": None}], contract)
    else:
        rows, _ = check_records([{"x": None, "colour": None}], contract)
        assert session.run(None, feeds_from_rows(rows, served))[0].shape[0] == 1


@pytest.mark.parametrize("name", [n for n, r in recipes.RECIPES.items() if set(r.tasks) != set(recipes.TASKS)])
def test_a_task_the_recipe_does_not_train_names_the_recipes_that_do(name: str) -> None:
    other = next(task for task in recipes.TASKS if task not in recipes.get(name).tasks)
    with pytest.raises(ConfigError, match=f"recipe '{name}'.* use .*auto.* for {other}"):
        recipes.estimator(DatasetConfig.from_dict({"recipe": name}), other)


def test_the_config_accepts_exactly_the_registered_recipes() -> None:
    for name in recipes.names():
        assert DatasetConfig.from_dict({"recipe": name}).recipe == name
    assert DatasetConfig().recipe == recipes.DEFAULT_RECIPE
    with pytest.raises(ConfigError, match="'recipe' must be one of " + ", ".join(map(re.escape, recipes.names()))):
        DatasetConfig.from_dict({"recipe": "forest"})
    with pytest.raises(ConfigError, match="'recipe' must be one of"):
        DatasetConfig.from_dict({"recipe": 5})


def test_tune_is_refused_for_a_recipe_that_cannot_be_tuned() -> None:
    untunable = [name for name, recipe in recipes.RECIPES.items() if not recipe.tunable]
    for name in untunable:
        with pytest.raises(ConfigError, match="tune works with recipe auto only"):
            DatasetConfig.from_dict({"recipe": name, "tune": {"budget_seconds": 10}})


def test_the_lambda_layer_holds_exactly_the_libraries_of_the_recipes_it_claims() -> None:
    layer = (ROOT / "layer" / "requirements.txt").read_text().lower()
    pinned = set(re.findall(r"^([a-z0-9_.-]+)==", layer, re.MULTILINE))
    for recipe in recipes.RECIPES.values():
        for library in recipe.libraries:
            assert (library in pinned) is recipe.in_lambda_layer, (recipe.name, library)


def test_the_readme_recipe_table_lists_every_recipe() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### Recipes"):]
    table = table[: table.index("\n\n", table.index("| recipe |"))]
    listed = re.findall(r"^\| `([a-z0-9-]+)`", table, re.MULTILINE)
    assert sorted(listed) == sorted(recipes.names())


def test_serving_refuses_missing_values_for_exactly_the_complete_rows_recipes() -> None:
    from stepml.onnx_model import RECIPES_ON_COMPLETE_ROWS

    assert {n for n, r in recipes.RECIPES.items() if r.complete_rows_only} == set(RECIPES_ON_COMPLETE_ROWS)
