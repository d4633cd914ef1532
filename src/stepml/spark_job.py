"""The Spark path: one AWS Glue job (Spark 3.5) in place of Validate → Preprocess → Train.

The state machine's "Train on Spark" starts it with the upload's bucket, key, version, dataset and
run id (``--stepml_*`` arguments). It

1. reads the CSV with Spark (every column as text) and counts its rows;
2. validates a random sample of at most :data:`SAMPLE_ROWS` rows with stepml's own validation
   (the same report JSON, with ``rows`` the whole upload's count and ``sampled_rows``), so a bad
   target or config fails here with the Lambda path's words;
3. splits as ``split`` says (``test_file``, the first ``test_rows`` rows, or a random
   ``test_size`` hold-out) and drops rows without a target, with Spark;
4. fits the recipe's column transformer on a training sample (ordinal or one-hot codes, imputation:
   small learned state), applies it to every training row on the executors, and trains XGBoost
   across them with ``xgboost.spark``: ``SparkXGBRegressor``, or ``SparkXGBClassifier`` on the
   classes' codes 0..K-1 (the user's labels sorted; weighted ``balanced`` when the run's metric
   rewards minorities, as the auto recipe weights them). As ``auto`` does, the rounds are chosen
   first by early stopping on a fifth of (a sample of) the training rows (:func:`_fit_params`);
5. puts the booster behind the fitted transformer as a scikit-learn Pipeline (a classifier behind
   :class:`~stepml.labelled_classifier.LabelledClassifier`, which answers in the user's labels)
   and stages it exactly as Train does (``model.joblib``, the two-block ``model.onnx``,
   scikit-learn's reference outputs), with bounded samples of the splits for Evaluate, and writes
   the run state Train would have returned at :func:`stepml.keys.spark_result`. Verify → Evaluate
   → Gate → Promote take it from there unchanged.

A :class:`~stepml.errors.StepmlError` ends the job FAILED; its ``Type: message`` is the job run's
ErrorMessage, which the state machine turns into the run's cause.

Not on this path: ``tune`` and the seed-a recipe (a ConfigError naming itself). A random hold-out
is not stratified by class here (Spark's ``randomSplit``; the Lambda path stratifies).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from stepml import integrity, keys, recipes
from stepml.config import DatasetConfig, load_config
from stepml.errors import ConfigError, DataError, StepmlError
from stepml.recipes import CLASS_WEIGHTED_METRICS
from stepml.settings import Settings, load_settings
from stepml.storage import S3Store

#: The most rows validated, used to fit the column transformer, and handed to Evaluate per split.
SAMPLE_ROWS = 50_000
#: XGBoost's settings on Spark where the config's ``params`` name none (the auto recipe's spirit:
#: many shallow-ish rounds at a small learning rate).
SPARK_XGBOOST_PARAMS: dict[str, Any] = {"n_estimators": 300, "learning_rate": 0.1, "max_depth": 6}
#: Most rounds the validation fit boosts (the final fit boosts ROUNDS_SCALE x the best of them).
MAX_ROUNDS = 1000
#: The most training rows the validation fit (which chooses the rounds) sees; a fifth validate.
VALIDATION_FIT_ROWS = 100_000
#: Columns the job adds: a row's class weight, a row's place in the upload.
WEIGHT = "stepml_weight"
PARTITION, ROW = "stepml_partition", "stepml_row"
#: The line prefix the job writes its error under (the offline runner reads it back).
ERROR_MARKER = "stepml-error: "


@dataclass(frozen=True)
class JobArguments:
    bucket: str
    key: str
    version_id: str | None
    dataset: str
    run_id: str
    execution_arn: str | None = None


def parse_arguments(argv: list[str]) -> JobArguments:
    """The ``--stepml_*`` arguments; Glue's own (``--JOB_ID``, ``--job-bookmark-option``...) are ignored."""
    parser = argparse.ArgumentParser(prog="stepml.spark_job")
    for name in ("bucket", "key", "dataset", "run_id"):
        parser.add_argument(f"--stepml_{name}", required=True)
    parser.add_argument("--stepml_version_id", default="")
    parser.add_argument("--stepml_execution_arn", default="")
    known, _ = parser.parse_known_args(argv)
    version = known.stepml_version_id
    return JobArguments(bucket=known.stepml_bucket, key=known.stepml_key,
                        version_id=None if version in ("", "null", "None") else version,
                        dataset=known.stepml_dataset, run_id=known.stepml_run_id,
                        execution_arn=known.stepml_execution_arn or None)


def spark_session() -> Any:
    """Glue's session on AWS; ``local[2]`` where no cluster is configured (offline)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("stepml")
    if not os.environ.get("SPARK_MASTER") and "GLUE_VERSION" not in os.environ and "--JOB_ID" not in sys.argv:
        builder = builder.master("local[2]").config("spark.ui.enabled", "false") \
            .config("spark.sql.shuffle.partitions", "4")
    return builder.getOrCreate()


def _spark35_compatible_xgboost() -> None:
    """Let xgboost 3.x's Spark estimator run on Spark 3.5 (Glue 5.x).

    It calls ``DataFrame.mapInPandas(..., profile=...)``, a keyword PySpark 4 added for stage-level
    scheduling; for CPU training it always passes ``profile=None`` ("CPU training doesn't require
    stage-level scheduling", xgboost.spark.core), which on Spark 3.5 means leaving it out.
    """
    import inspect

    from pyspark.sql.pandas.map_ops import PandasMapOpsMixin

    original = PandasMapOpsMixin.mapInPandas
    if "profile" in inspect.signature(original).parameters:
        return

    def map_in_pandas(self: Any, func: Any, schema: Any, barrier: bool = False, profile: Any = None) -> Any:
        if profile is not None:
            raise ConfigError("XGBoost asked Spark for stage-level scheduling (GPU training), which needs Spark 4")
        return original(self, func, schema, barrier)

    PandasMapOpsMixin.mapInPandas = map_in_pandas  # type: ignore[method-assign]


def _check_config(config: DatasetConfig, source: str) -> None:
    if config.tune is not None:
        raise ConfigError(f"{source}: tune runs on engine lambda only")
    if config.recipe not in ("auto", "seed-b"):
        raise ConfigError(f"{source}: the Spark path trains recipe auto or seed-b, not {config.recipe!r}")


def _input_path(spark: Any, store: S3Store, key: str, version_id: str | None, workdir: str) -> str:
    """Where Spark reads a CSV of the bucket: S3 itself on a cluster, a local copy in local mode
    (one machine; Spark's s3a connector is not in PyPI's pyspark)."""
    if not spark.sparkContext.master.startswith("local"):
        return f"s3://{store.bucket}/{key}"
    import shutil

    if store.head(key) is None:
        raise DataError(f"s3://{store.bucket}/{key} does not exist")
    path = os.path.join(workdir, f"{len(os.listdir(workdir))}.csv")
    request = {"Bucket": store.bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
    with open(path, "wb") as out:  # streamed: a large upload is never whole in the driver's memory
        shutil.copyfileobj(store.client.get_object(**request)["Body"], out, 1 << 20)
    return path


def _split(spark: Any, store: S3Store, table: Any, rows: int, config: DatasetConfig,
           workdir: str) -> tuple[Any, Any, int]:
    """Training and test rows as ``config.split`` says (the Lambda path's three designs), and the
    rows given (the upload's, and the test file's): the CSV ``split.test_file`` is the test set;
    else the first ``split.test_rows`` rows of the upload are; else a random ``split.test_size``
    hold-out (seeded by ``split.seed``)."""
    from pyspark.sql import functions as F

    test_file, test_rows = config.split.test_file, config.split.test_rows
    if test_file is not None:
        if store.head(test_file) is None:
            raise DataError(f"config split.test_file names s3://{store.bucket}/{test_file}, which does not exist")
        test = spark.read.csv(_input_path(spark, store, test_file, None, workdir), header=True, inferSchema=False)
        missing = [c for c in table.columns if c not in test.columns]
        if missing:
            raise DataError(f"config split.test_file {test_file!r} lacks column(s) of the upload: {', '.join(missing)}")
        test = test.select(*table.columns).cache()
        return table, test, rows + test.count()
    if test_rows is not None:
        if test_rows >= rows:
            raise DataError(f"config split.test_rows is {test_rows} but the upload has only {rows} rows")
        # The row's place in the file: Spark numbers a file's rows in order within each of its
        # partitions (partition id in the upper bits); a partition's offset is the rows before it.
        numbered = table.withColumn(PARTITION, F.spark_partition_id()) \
            .withColumn(ROW, F.monotonically_increasing_id())
        counts = dict(numbered.groupBy(PARTITION).count().collect())
        offsets, total = {}, 0
        for partition in sorted(counts):
            offsets[partition], total = total, total + counts[partition]
        offset = F.create_map(*[item for partition, start in offsets.items()
                                for item in (F.lit(partition), F.lit(start))])
        place = offset[F.col(PARTITION)] + F.col(ROW) - F.shiftleft(F.col(PARTITION).cast("long"), 33)
        numbered = numbered.withColumn(ROW, place)
        first = F.col(ROW) < test_rows
        return numbered.where(~first).drop(PARTITION, ROW), numbered.where(first).drop(PARTITION, ROW), rows
    train, test = table.randomSplit([1 - config.split.test_size, config.split.test_size], seed=config.split.seed)
    return train, test, rows


def _typed(frame: Any, location: str) -> Any:
    """A text sample, parsed as the Lambda path parses an upload (stepml.validation.read_table)."""
    from stepml.validation import read_table

    return read_table(frame.to_csv(index=False).encode(), location)


def read_chunk(chunk: Any, text_columns: list[str]) -> Any:
    """An executor's chunk of rows (every value the CSV's text, as Spark read it) typed as the Lambda
    path reads the CSV (:func:`stepml.validation.read_table`), which the sample the column
    transformer was fitted on went through: the spaces around a value go, a missing marker
    (:data:`stepml.columns.MISSING_MARKERS`) is missing. ``text_columns`` (the schema's categorical
    and date features) stay text; a numeric feature or target that the CSV writes formatted
    (``$1,234``) is read to its number where the model frame is built (:func:`stepml.columns.as_numbers`)."""
    import pandas as pd

    from stepml.columns import MISSING_MARKERS, trimmed_text

    typed = pd.read_csv(io.StringIO(chunk.to_csv(index=False)), dtype=dict.fromkeys(text_columns, str),
                        na_values=MISSING_MARKERS, keep_default_na=False, skipinitialspace=True)
    for name in text_columns:
        typed[name] = trimmed_text(typed[name])
    return typed


def _sample(table: Any, rows: int, total: int, seed: int) -> Any:
    fraction = min(1.0, 1.2 * rows / max(total, 1))
    return table.sample(fraction=fraction, seed=seed).limit(rows).toPandas()


@dataclass(frozen=True)
class ClassCodes:
    """The classes of a classification target: the user's labels (sorted as scikit-learn sorts
    them) and the code 0..K-1 of each spelling of a label in the CSV's text."""

    labels: Any
    index: dict[str, int]


def _class_codes(train: Any, target: str) -> ClassCodes:
    """The target's distinct texts on the training rows, typed as the Lambda path types a target
    (:func:`stepml.preprocessing.class_labels`), numbered in the labels' order."""
    import numpy as np
    import pandas as pd

    from stepml.columns import MISSING_MARKERS, trimmed_text
    from stepml.preprocessing import class_labels
    from stepml.validation import read_formatted_numbers

    texts = [row[0] for row in train.select(target).distinct().collect()]
    # typed as the Lambda path reads a CSV (stepml.validation.read_table): the spaces around a
    # label go (UCI's adult.data writes ", >50K"), "$1,000" labels are the number 1000
    frame = pd.read_csv(io.StringIO(pd.DataFrame({target: texts}).to_csv(index=False)),
                        na_values=MISSING_MARKERS, keep_default_na=False, skipinitialspace=True)
    frame[target] = trimmed_text(frame[target])
    read_formatted_numbers(frame)
    typed = frame[target]
    present = typed.notna().to_numpy()
    labels = class_labels(typed[present])
    ordered = np.unique(labels.to_numpy())
    code = {label: index for index, label in enumerate(ordered.tolist())}
    index = {text: code[label] for text, label in zip(np.asarray(texts, dtype=object)[present], labels.tolist(),
                                                      strict=True)}
    return ClassCodes(ordered, index)


def _balanced_weights(encoded: Any, label: str, classes: int) -> Any:
    """A ``stepml_weight`` column: rows / (classes x rows of the class), scikit-learn's
    ``class_weight="balanced"`` (what the auto recipe sets when the metric rewards minorities)."""
    from pyspark.sql import functions as F

    counts = {row[0]: row[1] for row in encoded.groupBy(label).count().collect()}
    total = sum(counts.values())
    weights = F.create_map(*[item for code, count in counts.items()
                             for item in (F.lit(code), F.lit(total / (classes * count)))])
    return encoded.withColumn(WEIGHT, weights[F.col(label)])


def _spark_arguments(features: Any, label: str, spark: Any, seed: int) -> dict[str, Any]:
    workers = max(1, min(int(spark.sparkContext.defaultParallelism), features.rdd.getNumPartitions()))
    arguments: dict[str, Any] = {"features_col": "features", "label_col": label, "num_workers": workers,
                                 "missing": float("nan"), "random_state": seed}
    if WEIGHT in features.columns:
        arguments["weight_col"] = WEIGHT
    return arguments


def _fit_params(config: DatasetConfig, encoded: Any, names: list[str], label: str, classes: int | None,
                seed: int) -> tuple[dict[str, Any], int | None, int]:
    """XGBoost's parameters for the final fit, the rounds chosen and the validation rows.

    As the auto recipe does (:mod:`stepml.auto_selection`): unless ``params`` fix the rounds, a
    fifth of (a sample of at most :data:`VALIDATION_FIT_ROWS`) encoded training rows is held out
    (``classes``: a classification's number of classes; each must be among the rest),
    the booster boosts on the rest until the held-out loss has not fallen for ``PATIENCE`` rounds,
    and the final fit on every training row boosts the best round x ``ROUNDS_SCALE``. The sample
    is small enough for the driver: this fit is plain XGBoost there, not a second Spark job.
    """
    import numpy as np
    from xgboost import XGBClassifier, XGBRegressor

    from stepml.auto_selection import MIN_ROUNDS, PATIENCE, ROUNDS_SCALE, VALIDATION_SIZE

    params = {**SPARK_XGBOOST_PARAMS, **config.params}
    if "n_estimators" in config.params:
        return params, None, 0
    rows = encoded.count()
    fraction = min(1.0, 1.2 * VALIDATION_FIT_ROWS / max(rows, 1))
    sample = (encoded.sample(fraction=fraction, seed=seed) if fraction < 1 else encoded).limit(VALIDATION_FIT_ROWS)
    frame = sample.toPandas()
    held_out = np.random.default_rng(seed).random(len(frame)) < VALIDATION_SIZE
    if held_out.sum() < 10 or (~held_out).sum() < 10:
        return params, None, 0
    x, y = frame[names].to_numpy(), frame[label].to_numpy()
    if classes is not None and len(np.unique(y[~held_out])) < classes:
        return params, None, 0  # a class too rare for the sample: the defaults' rounds, as auto does
    weights = frame[WEIGHT].to_numpy() if WEIGHT in frame.columns else np.ones(len(frame))
    model = (XGBRegressor if classes is None else XGBClassifier)(
        **{**params, "n_estimators": MAX_ROUNDS}, early_stopping_rounds=PATIENCE, random_state=seed,
        missing=float("nan"), tree_method="hist", n_jobs=2)
    try:
        model.fit(x[~held_out], y[~held_out], sample_weight=weights[~held_out], eval_set=[(x[held_out], y[held_out])],
                  sample_weight_eval_set=[weights[held_out]], verbose=False)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"config params: XGBoost refused them ({exc})") from None
    rounds = max(MIN_ROUNDS, round((int(model.best_iteration) + 1) * ROUNDS_SCALE))
    return {**params, "n_estimators": rounds}, rounds, int(held_out.sum())


def train_on_spark(spark: Any, args: JobArguments, settings: Settings) -> dict[str, Any]:
    """Validate, split and train the upload; stage the model as Train does; return Train's state."""
    import joblib
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import functions as F
    from xgboost import XGBClassifier, XGBRegressor
    from xgboost.spark import SparkXGBClassifier, SparkXGBRegressor

    from stepml import onnx_export
    from stepml.labelled_classifier import LabelledClassifier
    from stepml.onnx_verify import reference_key
    from stepml.preprocessing import clean, feature_schema, ignored_columns, to_model_frame
    from stepml.validation import validate

    store = S3Store(settings)
    dataset, run_id = args.dataset, args.run_id
    location = f"s3://{args.bucket}/{args.key}"
    config = load_config(store, dataset)
    _check_config(config, f"s3://{args.bucket}/{keys.config(dataset)}")
    seed = config.split.seed
    with tempfile.TemporaryDirectory() as workdir:
        table = spark.read.csv(_input_path(spark, store, args.key, args.version_id, workdir), header=True,
                               inferSchema=False)
        rows = table.count()
        frame, notes = _typed(_sample(table, SAMPLE_ROWS, rows, seed), location)
        report = validate(frame, config, location)
        report["warnings"] = [*notes, *report["warnings"]]
        report.update({"rows": rows, "sampled_rows": len(frame), "engine": "spark"})
        report_key = keys.validation_report(dataset, run_id)
        store.put_json(report_key, {**report, "run_id": run_id, "config": config.to_dict()})
        target, task = report["target"], report["task"]
        # the run's primary metric (balanced accuracy for an imbalanced target the config leaves
        # unnamed) decides, as on Lambda, whether the classes are weighted
        config = config.with_metric(report["primary_metric"])

        # Split and clean on the executors: rows without a target go.
        def labelled(rows: Any) -> Any:
            return rows.where(F.col(target).isNotNull() & (F.trim(F.col(target)) != ""))

        train, test, given = _split(spark, store, table, rows, config, workdir)
        train, test = labelled(train), labelled(test)
        train, test = train.cache(), test.cache()
        train_rows, test_rows = train.count(), test.count()
        if train_rows < config.min_rows or test_rows < 2:
            raise DataError(f"{location}: only {train_rows} training and {test_rows} test rows remain after "
                            f"cleaning; at least {config.min_rows} and 2 are needed")
        train_sample = clean(_typed(_sample(train, SAMPLE_ROWS, train_rows, seed), location)[0], target, config)
        test_sample = clean(_typed(_sample(test, SAMPLE_ROWS, test_rows, seed), location)[0], target, config)
        schema = feature_schema(train_sample, target)
        codes = _class_codes(train, target) if task == "classification" else None

        # The column transformer: fitted on the sample, applied to every training row.
        pipeline = recipes.build_pipeline(schema, task, config.model_copy(update={"recipe": "auto"})
                                          if config.recipe != "seed-b" else config)
        pipeline = pipeline[:-1]
        columns = pipeline.fit(to_model_frame(train_sample, schema))
        width = len(columns.transform(to_model_frame(train_sample.head(1), schema))[0])
        names = [f"f{i}" for i in range(width)]
        text_columns = [f["name"] for f in schema if f["kind"] in ("categorical", "date")]
        label = "stepml_label"

        def transform(chunks: Any) -> Any:
            import pandas as pd

            from stepml.columns import as_numbers

            for chunk in chunks:
                typed = read_chunk(chunk, text_columns)
                values = columns.transform(to_model_frame(typed, schema))
                out = pd.DataFrame(values, columns=names).astype("float64")
                if codes is None:  # "$42,000.00" is 42000, as the Lambda path reads a regression target
                    out[label] = as_numbers(typed[target]).to_numpy()
                else:  # the text as written -> its class code (a missing marker -> NaN, dropped)
                    out[label] = chunk[target].map(codes.index).astype("float64").to_numpy()
                yield out

        output_schema = ", ".join(f"{name} double" for name in [*names, label])
        encoded = train.mapInPandas(transform, schema=output_schema).where(F.col(label).isNotNull())
        if codes is not None and config.metric_for(task) in CLASS_WEIGHTED_METRICS:
            encoded = _balanced_weights(encoded, label, len(codes.labels))
        encoded = encoded.cache()  # read by the rounds' sample and the fit: encoded once
        features = VectorAssembler(inputCols=names, outputCol="features", handleInvalid="keep").transform(encoded)
        _spark35_compatible_xgboost()
        estimator = SparkXGBClassifier if codes is not None else SparkXGBRegressor
        started = time.perf_counter()
        params, rounds, validation_rows = _fit_params(config, encoded, names, label, None if codes is None else len(codes.labels), seed)
        try:
            model = estimator(**_spark_arguments(features, label, spark, seed), **params).fit(features)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"config params: XGBoost on Spark refused them ({exc})") from None
        seconds = time.perf_counter() - started

    # The registry's artifact: the fitted transformer + the booster, as one scikit-learn Pipeline.
    from sklearn.pipeline import Pipeline

    booster = model.get_booster()
    if codes is None:
        regressor = XGBRegressor(**params)
        regressor._Booster = booster
        fitted = Pipeline([*columns.steps, ("model", regressor)])
    else:
        classifier = XGBClassifier(**params)
        classifier.load_model(bytearray(booster.save_raw("json")))  # its class count with it
        fitted = Pipeline([*columns.steps, ("model", LabelledClassifier.of_fitted(classifier, codes.labels))])
    onnx_model = onnx_export.export(fitted, schema, task)
    reference = onnx_export.reference(fitted, test_sample, schema, task)
    buffer = io.BytesIO()
    joblib.dump(fitted, buffer, compress=3)
    staged = {"model.joblib": buffer.getvalue(), "model.onnx": onnx_model}
    artifacts = {name: keys.staging(dataset, run_id, name) for name in staged}
    for name, data in staged.items():
        store.put_bytes(artifacts[name], data)
    reference_at = reference_key(dataset, run_id)
    store.put_bytes(reference_at, json.dumps(reference).encode(), content_type="application/json")
    split_keys = {name: keys.preprocessed(dataset, run_id, name) for name in ("train.csv", "test.csv", "schema.json")}
    store.put_bytes(split_keys["train.csv"], train_sample.to_csv(index=False).encode(), content_type="text/csv")
    store.put_bytes(split_keys["test.csv"], test_sample.to_csv(index=False).encode(), content_type="text/csv")
    store.put_json(split_keys["schema.json"], schema)
    ignored_key = keys.preprocessed(dataset, run_id, "ignored.json")
    store.put_json(ignored_key, ignored_columns(frame, schema, target, config))
    # Evaluate's work on the fitted pipeline happens here, where XGBoost is installed: the Lambda
    # layer has no XGBoost, so Evaluate registers from this assessment and never unpickles the model.
    from stepml.stages import assess

    assessment = json.dumps(assess(fitted, train_sample, test_sample, schema, task, target, config)).encode()
    assessment_key = keys.staging(dataset, run_id, "assessment.json")
    store.put_bytes(assessment_key, assessment, content_type="application/json")
    found = store.head(args.key)
    return {
        "dataset": dataset,
        "run_id": run_id,
        "duplicate": False,
        "execution_arn": args.execution_arn,
        "engine": "spark",
        "source": {"bucket": args.bucket, "key": args.key, "version_id": args.version_id,
                   "etag": found.etag.strip('"') if found else None, "size": found.size if found else None},
        "config": config.to_dict(),
        "target": target,
        "task": task,
        "primary_metric": report["primary_metric"],
        "rows": rows,
        "columns": len(report["columns"]),
        "warnings": len(report["warnings"]),
        "report_key": report_key,
        "train_key": split_keys["train.csv"],
        "test_key": split_keys["test.csv"],
        "schema_key": split_keys["schema.json"],
        "ignored_key": ignored_key,
        "train_rows": train_rows,
        "test_rows": test_rows,
        "dropped_rows": given - train_rows - test_rows,
        "artifacts": artifacts,
        "artifact_sha256": integrity.digests(staged),
        "onnx_reference_key": reference_at,
        "assessment_key": assessment_key,
        "assessment_sha256": integrity.digests({"assessment.json": assessment}),
        "train_seconds": round(seconds, 3),
        "model_bytes": len(onnx_model),
        "auto_choice": {"rounds": rounds, "target_transform": None, "family": "trees",
                        "validation_rows": validation_rows, "candidates": {}, "families": {},
                        "linear_params": {}},
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    settings = load_settings({**os.environ, "STEPML_BUCKET": args.bucket})
    spark = spark_session()
    state = train_on_spark(spark, args, settings)
    S3Store(settings).put_json(keys.spark_result(args.dataset, args.run_id), state)


if __name__ == "__main__":
    try:
        main()
    except StepmlError as error:
        # Glue makes the exception its run's ErrorMessage; offline, the runner reads this line.
        print(f"{ERROR_MARKER}{type(error).__name__}: {error}", file=sys.stderr, flush=True)
        raise
