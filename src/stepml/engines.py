"""Where a run trains: one :class:`Engine` per place, looked up by name (``config.engine``).

``lambda``
    The pipeline's own functions (Validate → Preprocess → Train, each one Lambda). Every recipe
    the Lambda layer holds (:attr:`stepml.recipes.Recipe.in_lambda_layer`). One function's memory
    caps the upload: Preprocess's 2048 MB take Adult-like CSVs up to ~770 MB (measured, issue
    #16), hence the template's ``SparkThresholdBytes`` of 600 MB.
``spark``
    One AWS Glue job (Spark 3.5): gradient-boosted trees trained across the job's workers with
    XGBoost's Spark estimator. The recipes that train gradient-boosted trees (``auto``,
    ``seed-b``); its model is exported to the same ONNX contract, so Verify → Evaluate → Gate →
    Promote and the API serve it unchanged.

The state machine decides right after the upload is claimed ("Which engine?" in
statemachine/pipeline.asl.json): an upload over ``MaxUploadBytes`` fails at once; a config that
names an engine (or a recipe only one engine can train) goes there; otherwise an upload over
``SparkThresholdBytes`` goes to Spark and the rest to Lambda. :func:`resolve` is the part that
needs the dataset's config; the sizes are compared in the state machine, where the template's
parameters are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from stepml import recipes
from stepml.errors import ConfigError

#: The config's ``engine`` values: ``auto`` lets the upload's size decide.
EngineChoice = Literal["auto", "lambda", "spark"]
ENGINE_CHOICES: tuple[str, ...] = get_args(EngineChoice)
AUTO = "auto"


@dataclass(frozen=True)
class Engine:
    """One place a run trains.

    Attributes
    ----------
    name:
        The config value and the state machine's branch name.
    summary:
        One line for the docs and error messages.
    recipes:
        The recipes it trains.
    """

    name: str
    summary: str
    recipes: tuple[str, ...]

    def trains(self, recipe: str) -> bool:
        return recipe in self.recipes


ENGINES: dict[str, Engine] = {
    engine.name: engine
    for engine in (
        Engine(
            name="lambda",
            summary="the pipeline's Lambda functions (uploads up to SparkThresholdBytes)",
            recipes=tuple(name for name, recipe in recipes.RECIPES.items() if recipe.in_lambda_layer),
        ),
        Engine(
            name="spark",
            summary="an AWS Glue (Spark) job training XGBoost across its workers",
            recipes=("auto", "seed-b"),
        ),
    )
}


def resolve(choice: str, recipe: str) -> str:
    """The engine a run must use, or ``auto`` when the upload's size may decide.

    ``choice`` is the config's ``engine``; a named engine that cannot train ``recipe`` is a
    ConfigError naming both and the engine that can. Under ``auto``, a recipe that only one engine
    trains (``seed-b``: XGBoost is not in the Lambda layer; ``seed-a``: no Spark forest) goes there.
    """
    if choice not in ENGINE_CHOICES:
        raise ConfigError(f"config engine {choice!r} is not an engine; choose one of {', '.join(ENGINE_CHOICES)}")
    able = [name for name, engine in ENGINES.items() if engine.trains(recipe)]
    if choice != AUTO:
        if choice not in able:
            hint = f"engine: {able[0]} (or auto) trains it" if able else "no engine trains it"
            raise ConfigError(
                f"config engine {choice!r} trains recipe {' or '.join(ENGINES[choice].recipes)}, "
                f"not {recipe!r}; {hint}"
            )
        return choice
    if not able:
        raise ConfigError(f"config recipe {recipe!r} has no engine that trains it")
    return able[0] if len(able) == 1 else AUTO


@dataclass(frozen=True)
class Limits:
    """The template's upload limits, as the state machine hands them to "Claim upload"."""

    spark_threshold_bytes: int
    max_upload_bytes: int

    @classmethod
    def from_state(cls, values: object) -> Limits:
        """Read ``{"spark_threshold_bytes": "...", "max_upload_bytes": "..."}`` (the template's
        parameters arrive as strings); a missing or non-positive one is a ConfigError naming it."""
        if not isinstance(values, dict):
            raise ConfigError("the state machine passed no limits to Claim upload (template.yaml: SparkThresholdBytes, MaxUploadBytes)")
        parsed = {}
        for field, parameter in (("spark_threshold_bytes", "SparkThresholdBytes"), ("max_upload_bytes", "MaxUploadBytes")):
            raw = values.get(field)
            try:
                number = int(str(raw))
            except ValueError:
                number = 0
            if number <= 0:
                raise ConfigError(f"template parameter {parameter} must be a positive number of bytes, got {raw!r}")
            parsed[field] = number
        limits = cls(**parsed)
        if limits.spark_threshold_bytes > limits.max_upload_bytes:
            raise ConfigError(
                f"template parameter SparkThresholdBytes ({limits.spark_threshold_bytes:,}) is over "
                f"MaxUploadBytes ({limits.max_upload_bytes:,}): no upload could take the Spark path"
            )
        return limits


__all__ = ["AUTO", "ENGINES", "ENGINE_CHOICES", "Engine", "EngineChoice", "Limits", "resolve"]
