"""The typed contracts at stepml's seams: what crosses a process boundary, defined once.

The run state that travels between the pipeline's Lambdas (Step Functions passes it as JSON), a
feature of the schema a prediction request must follow, a registered version's metadata, an
alias record and the quality gate's decision. Both sides of each seam (the stage that writes, the
stage, API or CLI that reads) use these types; mypy checks them.

Standard-library ``typing`` only: the inference layer (numpy + onnxruntime) imports this module.
The values are plain JSON objects at run time (``TypedDict`` adds no runtime check); what is
*validated* on the way in is the dataset config (:class:`stepml.config.DatasetConfig`).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict, get_args

#: What a model predicts: a class or a number.
Task = Literal["classification", "regression"]
TASKS: tuple[str, ...] = get_args(Task)
#: What a feature holds (a date column is served as its text and trained on as numeric parts).
FeatureKind = Literal["numeric", "categorical", "date"]


class Feature(TypedDict):
    """One feature of the schema a prediction request follows (``schema.json``, a version's
    ``meta.json`` ``schema``, ``GET /models/{name}``'s ``features``)."""

    name: str
    kind: FeatureKind
    required: bool
    #: the training rows had it missing (serving warns about a value the model never saw missing)
    missing_in_training: bool
    #: whether serving takes it missing (set on registration, from the fitted pipeline)
    nullable: NotRequired[bool]
    # numeric
    min: NotRequired[float | None]
    max: NotRequired[float | None]
    # categorical
    categories: NotRequired[list[str]]
    # date
    format: NotRequired[str]
    parts: NotRequired[list[str]]
    earliest: NotRequired[str | None]
    latest: NotRequired[str | None]


class IgnoredColumn(TypedDict):
    """A column of the upload that is not a model input, and why (a request may carry it)."""

    name: str
    reason: str


class UploadSource(TypedDict):
    """The uploaded object a run trains on (from the S3 'Object Created' event)."""

    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None
    sha256: NotRequired[str]


class UploadLimits(TypedDict):
    """The template's upload limits (SparkThresholdBytes, MaxUploadBytes), in bytes."""

    spark_threshold_bytes: int
    max_upload_bytes: int


class ClaimedRun(TypedDict):
    """The run state after "Claim upload": what "Which engine?" routes on."""

    dataset: str
    run_id: str
    duplicate: Literal[False]
    execution_arn: str | None
    source: UploadSource
    #: the effective config, as :meth:`stepml.config.DatasetConfig.to_dict` writes it
    config: dict[str, Any]
    #: ``lambda`` or ``spark`` when the config or recipe decides, ``auto`` when the size may
    engine: str
    limits: UploadLimits


class DuplicateRun(TypedDict):
    """Claim's (or Validate's) answer to a delivery of an object version already trained on."""

    dataset: str
    run_id: str
    duplicate: Literal[True]
    original_run: str | None
    source: UploadSource


class ValidatedRun(TypedDict):
    """The run state after "Validate dataset" (the input of "Preprocess")."""

    dataset: str
    run_id: str
    duplicate: bool
    execution_arn: str | None
    source: UploadSource
    #: the effective config, as :meth:`stepml.config.DatasetConfig.to_dict` writes it
    config: dict[str, Any]
    target: str
    task: Task
    primary_metric: str
    rows: int
    columns: int
    warnings: int
    report_key: str
    #: the upload as Validate parsed it (Parquet, :mod:`stepml.tables`): Preprocess reads it
    table_key: str
    #: the SHA-256 of the Parquet tables handed on, by file name (:data:`stepml.integrity.TABLES_KEY`):
    #: Validate's ``upload.parquet``, then Preprocess's ``train.parquet`` and ``test.parquet`` (the
    #: Spark path writes none)
    table_sha256: NotRequired[dict[str, str]]


class PreprocessedRun(ValidatedRun):
    """After "Preprocess": the splits, the feature schema and the ignored columns are in S3."""

    train_key: str
    test_key: str
    schema_key: str
    ignored_key: str
    train_rows: int
    test_rows: int
    dropped_rows: int


class TuningSummary(TypedDict):
    """What a hyperparameter search found (:func:`stepml.tuning.tune`)."""

    trials: int
    seconds: float
    metric: str
    validation_score: float
    validation_scores: list[float]
    validation_losses: list[float]
    validation_rows: int
    best_params: dict[str, Any]
    ensemble: list[dict[str, Any]]
    # how many folds the trials were scored on (1: one validation split; more: the auto recipe's
    # cross-validation folds, whose validation rows are every training row)
    folds: NotRequired[int]
    # the final fit's seconds as the search estimated them (each member's trial time, in
    # proportion to rows x rounds), which it stopped early enough to leave within the budget
    final_fit_seconds: NotRequired[float]
    # on tables the model families suit (stepml.tuning's family phase): trees, linear or blend, the
    # linear model's penalty, its weight in the blend, and the validation losses it was chosen by
    family: NotRequired[str]
    linear_params: NotRequired[dict[str, Any]]
    linear_weight: NotRequired[float]
    family_trials: NotRequired[int]
    family_losses: NotRequired[dict[str, float]]
    # the forest's primary metric on the validation rows, and the searched model's (the better is kept)
    forest_score: NotRequired[float]
    searched_score: NotRequired[float]
    # the forest's trees when it was kept (stepml.model_family.keep_node_budget may keep fewer than it grew)
    forest_trees: NotRequired[int]


class AutoChoiceSummary(TypedDict):
    """What the ``auto`` recipe chose on its validation split (:class:`stepml.auto_selection.AutoChoice`):
    the final fit's boosting rounds (None: the recipe's default, or a linear model), the target
    transform, the model family (``trees``, ``linear``, ``blend`` or ``forest``, :mod:`stepml.model_family`),
    how many rows validated, and each candidate's validation score by the primary metric."""

    rounds: int | None
    target_transform: str | None
    family: str
    validation_rows: int
    candidates: dict[str, dict[str, float]]
    families: dict[str, float]
    linear_params: dict[str, Any]
    booster_params: NotRequired[dict[str, Any]]  # chosen by a round's cost, max_bins by the columns' values (empty: the recipe's)
    folds: NotRequired[int]  # 1: one validation split; more: cross-validated (validation_rows: all training rows)
    forest_trees: NotRequired[int]  # the forest's trees (family forest; fewer past the node budget)


class TrainedRun(PreprocessedRun):
    """After "Train": the staged artifacts and scikit-learn's reference outputs."""

    artifacts: dict[str, str]
    artifact_sha256: dict[str, str]  # name -> hex SHA-256 (stepml.integrity), checked by Evaluate
    onnx_reference_key: str
    train_seconds: float
    model_bytes: int  # the ONNX graph's size (a Train metric)
    tuning: NotRequired[TuningSummary]
    auto_choice: NotRequired[AutoChoiceSummary]
    # Trained on Spark: the job's own assessment (stepml.stages.assess) and its SHA-256
    assessment_key: NotRequired[str]
    assessment_sha256: NotRequired[dict[str, str]]


class Assessment(TypedDict):
    """What Evaluate learns from a fitted pipeline (:func:`stepml.stages.assess`)."""

    evaluation: dict[str, Any]
    schema: list[dict[str, Any]]
    profile: dict[str, Any]


class SameRowsComparison(TypedDict):
    """The champion scored by Evaluate on the candidate's test rows (:mod:`stepml.comparison`).

    ``champion_value`` and ``candidate_value`` are the primary metric of each model on the same
    ``rows`` rows (None, with ``note`` saying why, when the champion could not be scored here).
    ``champion_trained_on``: how many of the candidate's scored test rows the champion had trained
    on (None: unknown, the champion recorded no fingerprint of its training rows); ``unseen_only``:
    whether those rows were left out of ``rows``.
    """

    version: int
    metric: str
    rows: int | None
    candidate_value: float | None
    champion_value: float | None
    champion_trained_on: int | None
    unseen_only: bool
    note: str


#: What the gate compared the candidate with the champion on (``GateDecision.compared_on``).
ComparedOn = Literal["candidate test rows", "champion's own test split"]


class GateDecision(TypedDict):
    """The quality gate's verdict on a candidate (:func:`stepml.gate.decide`).

    ``champion_value`` is the champion's value the candidate was compared with: on the candidate's
    test rows when ``compared_on`` says so, else as registered on its own test split
    (``champion_registered_value``).
    """

    metric: str
    value: float | None
    baseline: float | None
    champion_version: int | None
    champion_value: float | None
    passed: bool
    reason: str
    champion_registered_value: NotRequired[float | None]
    compared_on: NotRequired[ComparedOn]
    #: Evaluate's comparison on the same rows, which Promote and a promotion by hand reuse while
    #: the champion is still that version
    same_rows: NotRequired[SameRowsComparison]


class RegisteredRun(TypedDict):
    """After "Evaluate and register": the new version and the gate's verdict."""

    dataset: str
    run_id: str
    version: int
    primary_metric: str
    metrics: dict[str, float | None]
    baseline: dict[str, float | None]
    gate: GateDecision


class PromotedRun(RegisteredRun):
    """After "Promote": whether the version became champion, and why."""

    promoted: bool
    decision: str


class ArtifactChecksum(TypedDict):
    """A registered file's integrity record."""

    sha256: str
    bytes: int


class NewVersion(TypedDict):
    """What "Evaluate and register" records about a new version (:func:`stepml.stages.evaluate_and_register`)."""

    dataset: str
    task: Task
    target: str
    recipe: str
    #: the effective config, as :meth:`stepml.config.DatasetConfig.to_dict` writes it
    config: dict[str, Any]
    schema: list[Feature]
    ignored_columns: list[IgnoredColumn]
    #: :func:`stepml.evaluation.evaluate`'s result: metrics, baseline, primary metric...
    evaluation: dict[str, Any]
    train_rows: int
    test_rows: int
    train_seconds: float
    #: the upload (bucket, key, version, sha256...) with the run id and execution ARN
    lineage: dict[str, Any]
    libraries: dict[str, str]
    stepml_version: str
    gate: NotRequired[GateDecision]
    #: the auto recipe's validation choices (rounds, target transform, model family), when it made them
    auto_choice: NotRequired[AutoChoiceSummary]
    #: what ``tune`` searched and kept (trials, folds, the averaged parameter sets, family), when it ran
    tuning: NotRequired[TuningSummary]


class VersionMeta(NewVersion):
    """A registered version's ``meta.json``: what the stage recorded, plus what registering added."""

    name: str
    version: int
    artifacts: dict[str, ArtifactChecksum]
    registered: str


class ListedVersion(VersionMeta):
    """A version as the registry lists or shows it: its ``meta.json`` and the aliases naming it."""

    aliases: list[str]


class HistoryPage(TypedDict):
    """A page of an alias's history, newest first (:meth:`stepml.registry.ModelRegistry.history`):
    at most ``limit`` entries numbered below ``before``, the count of every entry ever, and the
    ``before`` of the next (older) page, None on the oldest."""

    entries: list[dict[str, Any]]
    total: int
    next_before: int | None


class AliasRecord(TypedDict):
    """An alias object (``models/<name>/aliases/<alias>.json``): the version it names, the last
    change, its recent history (each entry numbered ``seq`` from 1, with ``from``, the version
    before, and ``to``), how many older entries are archived beside it, and the rollback stack."""

    alias: str
    version: int
    previous_version: int | None
    reason: str
    actor: str
    updated: str
    history: list[dict[str, Any]]
    archived: int
    rollback_stack: list[int]
