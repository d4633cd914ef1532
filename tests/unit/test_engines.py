"""The engine registry: which engine may train a recipe, and the template's upload limits."""

from __future__ import annotations

import pytest

from stepml import engines, recipes
from stepml.config import DatasetConfig
from stepml.errors import ConfigError


def test_every_recipe_has_an_engine_and_every_lambda_recipe_is_in_the_layer() -> None:
    for name, recipe in recipes.RECIPES.items():
        able = [engine for engine in engines.ENGINES.values() if engine.trains(name)]
        assert able, f"recipe {name} has no engine"
        assert engines.ENGINES["lambda"].trains(name) == recipe.in_lambda_layer


@pytest.mark.parametrize(("choice", "recipe", "engine"), [
    ("auto", "auto", "auto"),          # both engines train it: the upload's size decides
    ("auto", "seed-b", "spark"),       # XGBoost is not in the Lambda layer
    ("auto", "seed-a", "lambda"),      # no forest on Spark
    ("lambda", "auto", "lambda"),
    ("spark", "auto", "spark"),
])
def test_resolve_names_the_engine_a_run_must_use(choice: str, recipe: str, engine: str) -> None:
    assert engines.resolve(choice, recipe) == engine


def test_a_config_naming_an_engine_that_cannot_train_its_recipe_is_refused_with_the_way_out() -> None:
    with pytest.raises(ConfigError) as raised:
        DatasetConfig.from_dict({"recipe": "seed-b", "engine": "lambda"}, "s3://b/config/shop.yaml")
    assert str(raised.value) == (
        "s3://b/config/shop.yaml: engine 'lambda' trains recipe auto or seed-a, not 'seed-b'; "
        "engine: spark (or auto) trains it"
    )


def test_an_unknown_engine_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="'engine' must be one of auto, lambda, spark, got 'emr'"):
        DatasetConfig.from_dict({"engine": "emr"}, "config/shop.yaml")


def test_limits_arrive_as_the_template_substitutes_them() -> None:
    limits = engines.Limits.from_state({"spark_threshold_bytes": "300000000", "max_upload_bytes": "10000000000"})
    assert (limits.spark_threshold_bytes, limits.max_upload_bytes) == (300_000_000, 10_000_000_000)


@pytest.mark.parametrize(("values", "message"), [
    (None, "passed no limits"),
    ({"spark_threshold_bytes": "${SparkThresholdBytes}", "max_upload_bytes": "1"}, "SparkThresholdBytes must be a positive"),
    ({"spark_threshold_bytes": "10", "max_upload_bytes": "0"}, "MaxUploadBytes must be a positive"),
    ({"spark_threshold_bytes": "10", "max_upload_bytes": "5"}, "no upload could take the Spark path"),
])
def test_bad_limits_name_the_template_parameter(values: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        engines.Limits.from_state(values)
