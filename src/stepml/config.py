"""Per-dataset configuration: ``config/<dataset>.yaml`` in the data bucket (every key optional).

Example (all keys, with their defaults where they have one)::

    target: income              # default: the last column
    task: classification        # or regression; inferred from the target when absent
    drop_columns: [fnlwgt]      # not used for training
    id_columns: [customer_id]   # identifiers: kept out of training, reported as ids
    keep_columns: [store_no]    # train on these although they look like ids (see below)
    recipe: auto                # auto | seed-a | seed-b (stepml.recipes)
    engine: auto                # auto | lambda | spark (stepml.engines): auto lets the upload's
                                # size decide (template parameter SparkThresholdBytes)
    params:                     # passed to the recipe's estimator (unknown names are an error)
      learning_rate: 0.05
    split:
      test_size: 0.2            # fraction of rows held out (random split)
      seed: 42
      stratify: true            # keep class proportions in both splits (classification)
      test_rows: 16281          # OR: the first N rows of the upload are the test set
      test_file: data/adult/adult-test.csv   # OR: another CSV in the bucket is the test set
    primary_metric: accuracy    # classification: accuracy | balanced_accuracy | f1 | roc_auc
                                # regression: rmse | mae | r2
                                # default: accuracy / rmse; balanced_accuracy (with class
                                # weights) when a class is under 10 % of the rows
    min_rows: 20                # fewer data rows fail validation
    min_primary_metric: 0.80    # quality gate: the new model must reach this on the test split
    max_regression_vs_champion: 0.01   # quality gate: how much worse than the champion it may be
    tune:
      budget_seconds: 120       # Optuna search (on a validation split carved from training rows) and the final fit
    capture: full               # what the prediction API records of each request: full | hashed | off
                                # (stepml.capture; kept in each version's meta.json)
    monitoring:                 # when `stepml monitor` (and the scheduled run) raise an alarm
      psi_threshold: 0.2        # a feature's or the prediction's PSI above this is drift
      accuracy_drop: 0.05       # classifiers: estimated/true accuracy this far under the test's
      rmse_increase: 0.10       # regressors: true RMSE this much (relative) over the test's
      min_rows: 100             # fewer captured rows than this raise no alarm

The test set is chosen by exactly one of three designs, in this order: ``split.test_file`` (a
second CSV with the same columns, stored in the data bucket under ``data/`` — not ``raw/``, so that
uploading it does not start a run of its own; the pipeline's roles may read ``data/*``), ``split.test_rows`` (the first N data rows of the upload, e.g.
UCI Adult whose official test rows come first), else a random ``split.test_size`` split with
``split.seed`` (stratified for classification when ``split.stratify`` and every class has two
rows; the test set then holds at least one row of every class, even where ``test_size`` would give
fewer). ``test_file`` and ``test_rows`` together are an error.

Id-like columns — integers or text with a different value in every row, such as row numbers or
customer keys — are left out of training without being listed (:func:`stepml.columns.is_identifier`;
the report gives each one role ``id`` and says why). ``keep_columns`` names those to train on anyway.

The config is validated with pydantic; every error names the offending key (``split.test_size``,
``params``...) and the file it came from.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from stepml import engines, keys, recipes
from stepml.capture import DEFAULT_MODE, MODES, CaptureMode
from stepml.contracts import TASKS, Task
from stepml.errors import ConfigError

#: The metrics a model can be judged by, per task, and whether larger is better.
METRICS: dict[str, dict[str, bool]] = {
    "classification": {"accuracy": True, "balanced_accuracy": True, "f1": True, "roc_auc": True},
    "regression": {"rmse": False, "mae": False, "r2": True},
}
#: The metric a task is judged by when the config names none.
DEFAULT_METRIC = {"classification": "accuracy", "regression": "rmse"}
#: A class with less than this share of the rows is a minority the validation report warns about;
#: without an explicit ``primary_metric`` the run is then judged by :data:`IMBALANCED_METRIC`
#: and the recipe's estimator weights the classes.
MINORITY_SHARE = 0.10
IMBALANCED_METRIC = "balanced_accuracy"
#: The longest tuning budget: the training Lambda has 900 s, and the final fit needs some of it.
MAX_TUNE_SECONDS = 600


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class SplitConfig(_Strict):
    """How the test set is chosen (see the module docstring)."""

    test_size: float = Field(0.2, ge=0.05, le=0.5)
    seed: int = Field(42, ge=0, le=2**32 - 1)  # numpy's seed range
    stratify: bool = True
    test_rows: int | None = Field(None, ge=1)
    test_file: str | None = None

    @field_validator("test_file")
    @classmethod
    def _test_file_is_a_csv_key(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.endswith(".csv") or value.startswith(("/", "s3://")):
            raise ValueError("must be a key of a .csv object in the data bucket, e.g. data/adult/test.csv")
        if value.startswith("raw/"):
            raise ValueError("must not be under raw/: an upload there starts a run of its own")
        if not value.startswith(keys.DATA_PREFIX) or ".." in value.split("/"):
            # The pipeline's functions may read raw/, config/ and data/ only (template.yaml).
            raise ValueError(
                f"must be under {keys.DATA_PREFIX} (e.g. data/adult/test.csv): the pipeline may read "
                "test files there and nowhere else outside raw/"
            )
        return value

    @model_validator(mode="after")
    def _one_test_set(self) -> SplitConfig:
        if self.test_rows is not None and self.test_file is not None:
            raise ValueError("give test_rows or test_file, not both")
        return self


class TuneConfig(_Strict):
    """Hyperparameter search within a time budget."""

    budget_seconds: int = Field(..., ge=5, le=MAX_TUNE_SECONDS)


class MonitoringConfig(_Strict):
    """When a monitor run raises an alarm (:mod:`stepml.monitoring`)."""

    #: a feature's (or the prediction's) PSI above this is drift
    psi_threshold: float = Field(0.2, gt=0)
    #: classifiers: an estimated or true accuracy this far below the test accuracy is an alarm
    accuracy_drop: float = Field(0.05, gt=0, le=1)
    #: regressors: a true RMSE this much (relative) above the test RMSE is an alarm
    rmse_increase: float = Field(0.10, gt=0)
    #: fewer captured rows (or labelled rows, for the true metric) than this raise no alarm
    min_rows: int = Field(100, ge=1)


class DatasetConfig(_Strict):
    """The effective config of one dataset (file values over defaults)."""

    target: str | None = None
    task: Task | None = None
    drop_columns: tuple[str, ...] = ()
    id_columns: tuple[str, ...] = ()
    keep_columns: tuple[str, ...] = ()
    recipe: str = recipes.DEFAULT_RECIPE
    engine: engines.EngineChoice = "auto"
    params: dict[str, Any] = Field(default_factory=dict)
    split: SplitConfig = Field(default_factory=SplitConfig)
    primary_metric: str | None = None
    min_rows: int = Field(20, ge=2)
    min_primary_metric: float | None = None
    max_regression_vs_champion: float | None = Field(None, ge=0)
    tune: TuneConfig | None = None
    capture: CaptureMode = DEFAULT_MODE
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)

    @field_validator("recipe", mode="before")
    @classmethod
    def _known_recipe(cls, value: Any) -> Any:
        # The names come from the recipe registry; reported as a choice, like ``task``'s Literal.
        if not isinstance(value, str) or value not in recipes.RECIPES:
            raise PydanticCustomError("literal_error", "Input should be one of the recipes")
        return value

    @field_validator("capture", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML 1.1 (PyYAML) reads a bare `capture: off` as the boolean false.
        return "off" if value is False else value

    @field_validator("primary_metric")
    @classmethod
    def _known_metric(cls, value: str | None) -> str | None:
        known = sorted({m for metrics in METRICS.values() for m in metrics})
        if value is not None and value not in known:
            raise ValueError(f"must be one of {', '.join(known)}")
        return value

    @field_validator("params")
    @classmethod
    def _params_are_named(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in value if not isinstance(k, str) or not k.isidentifier()]
        if bad:
            raise ValueError(f"parameter names must be identifiers, got {bad}")
        return value

    @model_validator(mode="after")
    def _column_lists_agree(self) -> DatasetConfig:
        both = sorted(set(self.drop_columns) & set(self.id_columns))
        if both:
            raise ValueError(f"column(s) {', '.join(both)} are in both drop_columns and id_columns")
        if self.target and self.target in (*self.drop_columns, *self.id_columns):
            raise ValueError(f"the target {self.target!r} cannot be dropped or an id column")
        kept = sorted(set(self.keep_columns) & set(self.excluded_columns))
        if kept:
            raise ValueError(
                f"column(s) {', '.join(kept)} are in keep_columns and in drop_columns or id_columns"
            )
        if self.target and self.target in self.keep_columns:
            raise ValueError(f"the target {self.target!r} cannot be in keep_columns (it is never a feature)")
        if self.tune is not None and not recipes.RECIPES[self.recipe].tunable:
            raise ValueError(f"tune works with recipe {' or '.join(recipes.tunable())} only")
        try:
            engines.resolve(self.engine, self.recipe)
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("config ")) from None
        if self.engine == "spark" and self.tune is not None:
            raise ValueError("tune runs on engine lambda only (the Spark job trains with the recipe's settings)")
        return self

    # -- derived values -------------------------------------------------------------------------

    @property
    def excluded_columns(self) -> tuple[str, ...]:
        """Columns never given to the model: dropped ones and ids."""
        return (*self.drop_columns, *self.id_columns)

    def metric_for(self, task: str, imbalanced: bool = False) -> str:
        """The primary metric of ``task``: the configured one, else the task's default.

        ``imbalanced``: the validation found a minority class under :data:`MINORITY_SHARE`; the
        default is then balanced accuracy (accuracy would reward predicting the majority class).
        An explicit ``primary_metric`` always wins.
        """
        if self.primary_metric:
            return self.primary_metric
        if task == "classification" and imbalanced:
            return IMBALANCED_METRIC
        return DEFAULT_METRIC[task]

    def with_metric(self, primary_metric: str | None) -> DatasetConfig:
        """This config with the run's primary metric (validation's choice) filled in, when the
        file named none; training and evaluation then judge and weight by it."""
        if self.primary_metric or not primary_metric:
            return self
        return self.model_copy(update={"primary_metric": primary_metric})

    # -- (de)serialisation ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (lists, not tuples); ``from_dict`` reads them back."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> DatasetConfig:
        """Validate ``data`` (a parsed YAML mapping); a bad key or value names itself."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"{source}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    """One line per problem, each starting with the key's dotted path."""
    allowed = {
        (): sorted(DatasetConfig.model_fields),
        ("split",): sorted(SplitConfig.model_fields),
        ("tune",): sorted(TuneConfig.model_fields),
        ("monitoring",): sorted(MonitoringConfig.model_fields),
    }
    problems = []
    for error in exc.errors():
        path = tuple(str(p) for p in error["loc"])
        key = ".".join(path)
        if not path:
            problems.append(error["msg"].removeprefix("Value error, "))
            continue
        if error["type"] == "extra_forbidden":
            parent = path[:-1]
            names = allowed.get(parent)
            hint = f"; allowed: {', '.join(names)}" if names else ""
            problems.append(f"unknown key {key!r}{hint}")
        elif error["type"] == "literal_error" and path and path[-1] in ("task", "recipe", "engine", "capture"):
            choices = {"task": TASKS, "recipe": recipes.names(), "engine": engines.ENGINE_CHOICES,
                       "capture": MODES}[path[-1]]
            problems.append(f"{key!r} must be one of {', '.join(choices)}, got {_quoted(error['input'])}")
        else:
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{key!r} {message} (got {_quoted(error['input'])})")
    more = len(problems) - MAX_PROBLEMS
    return "; ".join(problems[:MAX_PROBLEMS]) + (f"; and {more:,} more problem(s)" if more > 0 else "")


#: How many problems a config error lists (the rest are counted).
MAX_PROBLEMS = 10


def _quoted(value: Any, width: int = 80) -> str:
    """``repr(value)``, cut to ``width`` characters: a bad value may be a whole pasted table."""
    text = repr(value)
    return text if len(text) <= width else f"{text[:width]}… ({len(text):,} characters)"


#: The largest config file read (bytes). A real one is a few hundred bytes; the bound is checked
#: before any parsing, so a huge file cannot exhaust a function's memory.
MAX_CONFIG_BYTES = 64 * 1024


def check_config_size(size: int, source: str = "config") -> None:
    """Refuse a config of more than :data:`MAX_CONFIG_BYTES` (checked before it is downloaded)."""
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{source} is {size:,} bytes; a config may have at most {MAX_CONFIG_BYTES:,} "
            "(a config holds a few settings)"
        )


def _no_alias_loader() -> type:
    """PyYAML's safe loader without aliases: ``*name`` (and ``<<: *name`` merges) are refused.

    An alias repeats a whole subtree, so nine nested ones in 300 bytes expand to a billion
    nodes ("billion laughs"); a config never needs them.
    """
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise ConfigError(
                    f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not "
                    "allowed in a config: write the value out"
                )
            return super().compose_node(parent, index)

    return NoAliasLoader


def parse_config(text: str | bytes, source: str = "config") -> DatasetConfig:
    """Parse a YAML config document (at most :data:`MAX_CONFIG_BYTES`, no aliases); YAML syntax
    errors become a ConfigError with the line."""
    import yaml

    check_config_size(len(text.encode() if isinstance(text, str) else text), source)
    try:
        data = yaml.load(text, Loader=_no_alias_loader())  # a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a config") from None
    return DatasetConfig.from_dict(data, source)


def load_config(store: Any, dataset: str) -> DatasetConfig:
    """The effective config of ``dataset`` from ``store`` (a :class:`stepml.storage.S3Store`):
    ``config/<dataset>.yaml`` over the defaults; its size is checked before it is downloaded."""
    key = keys.config(dataset)
    found = store.head(key)
    if found is None:
        return DatasetConfig()
    source = f"s3://{store.bucket}/{key}" if hasattr(store, "bucket") else key  # a DirectoryStore has none
    check_config_size(found.size, source)
    return parse_config(store.get_bytes(key), source)


def dump_config(config: DatasetConfig) -> str:
    """The config as YAML, without the keys left at an empty default (``parse_config`` reads it)."""
    import yaml

    values = config.model_dump(mode="json", exclude_none=True)
    values = {k: v for k, v in values.items() if v not in ([], {})}
    if values.get("monitoring") == MonitoringConfig().model_dump(mode="json"):
        del values["monitoring"]  # the defaults: not worth a section in every written config
    return yaml.safe_dump(values, sort_keys=False)
