"""The pipeline's stages, one function per Lambda: S3 in, S3 out, small JSON between them.

Each takes the state the previous stage returned (plus explicit settings) and returns the next
state. Only keys, counts and metrics travel between stages - Step Functions caps a payload at
256 KB, so data and models always go through S3.
"""

from __future__ import annotations

import io
import json
import math
import platform
import time
from typing import Any, cast

from stepml import __version__, integrity, keys, recipes
from stepml.config import DatasetConfig, load_config
from stepml.contracts import (
    Assessment,
    AutoChoiceSummary,
    ClaimedRun,
    DuplicateRun,
    Feature,
    NewVersion,
    PreprocessedRun,
    PromotedRun,
    RegisteredRun,
    SameRowsComparison,
    TrainedRun,
    UploadSource,
    ValidatedRun,
)
from stepml.errors import DataError
from stepml.memory import release_garbage, return_large_frees_to_the_system
from stepml.observability import span
from stepml.settings import Settings
from stepml.storage import S3Store


def parse_upload_event(event: dict[str, Any]) -> UploadSource:
    """Bucket, key, version and ETag of the object an S3 'Object Created' event is about."""
    detail = event.get("detail") or {}
    bucket = (detail.get("bucket") or {}).get("name")
    obj = detail.get("object") or {}
    key = obj.get("key")
    if not bucket or not key:
        raise DataError("the event is not an S3 'Object Created' event: no detail.bucket.name / detail.object.key")
    return {
        "bucket": bucket,
        "key": key,
        "version_id": obj.get("version-id") or obj.get("versionId"),
        "etag": str(obj.get("etag") or obj.get("eTag") or "").strip('"') or None,
        "size": obj.get("size"),
    }


def _claim(payload: dict[str, Any], settings: Settings) -> tuple[UploadSource, str, str, S3Store, DuplicateRun | None]:
    """The upload the event names, its dataset, the run id, the store, and - when another run
    already took that object version (EventBridge is at-least-once: train once) - the duplicate's
    answer. "Claim upload" and Validate both claim; the same run claiming again is no duplicate."""
    from stepml.deliveries import claim_delivery

    source = parse_upload_event(payload.get("event") or payload)
    dataset = keys.dataset_from_raw_key(source["key"])
    run_id = payload.get("run_id") or f"manual-{int(time.time())}"
    store = S3Store(settings)
    earlier = claim_delivery(store, dataset, dict(source), run_id)
    duplicate: DuplicateRun | None = None
    if earlier is not None:
        duplicate = {"dataset": dataset, "run_id": run_id, "duplicate": True, "original_run": earlier.get("run_id"),
                     "source": source}
    return source, dataset, run_id, store, duplicate


def claim_upload(payload: dict[str, Any], settings: Settings) -> ClaimedRun | DuplicateRun:
    """Stage 0: claim the uploaded object version for this run and say which engine may train it.

    Reads no data (the CSV may be far larger than this function's memory): the event, the
    delivery claim, the dataset's config and, when the event lacks it, the object's size. The
    state machine's "Which engine?" then compares the size with ``limits`` (:mod:`stepml.engines`).
    """
    from stepml import engines

    limits = engines.Limits.from_state(payload.get("limits"))
    source, dataset, run_id, store, duplicate = _claim(payload, settings)
    if duplicate is not None:
        return duplicate
    config = load_config(store, dataset)
    if not isinstance(source["size"], int):
        found = store.head(source["key"])
        if found is None:
            raise DataError(f"s3://{source['bucket']}/{source['key']} no longer exists: nothing to train on")
        source["size"] = found.size
    return {
        "dataset": dataset,
        "run_id": run_id,
        "duplicate": False,
        "execution_arn": payload.get("execution_arn"),
        "source": source,
        "config": config.to_dict(),
        "engine": engines.resolve(config.engine, config.recipe),
        "limits": {"spark_threshold_bytes": limits.spark_threshold_bytes, "max_upload_bytes": limits.max_upload_bytes},
    }


def validate_upload(payload: dict[str, Any], settings: Settings) -> ValidatedRun | DuplicateRun:
    """Stage 1: check the uploaded CSV, save its validation report, describe it."""
    return_large_frees_to_the_system()  # peak memory: the data, not freed copies of it
    release_garbage()  # nor what an earlier invocation left in reference cycles
    from stepml import tables
    from stepml.registry import sha256
    from stepml.validation import read_table, validate

    source, dataset, run_id, store, duplicate = _claim(payload, settings)
    if duplicate is not None:
        return duplicate
    config = load_config(store, dataset)
    location = f"s3://{source['bucket']}/{source['key']}"
    with span("read"):
        data = store.get_bytes(source["key"], source["version_id"])
        digest, size = sha256(data), len(data)
        frame, notes = read_table(data, location)
        del data  # the parsed table is all the later stages need (peak memory)
    with span("validate"):
        report = validate(frame, config, location)
    report["warnings"] = [*notes, *report["warnings"]]  # how the file was read comes first
    test_file = config.split.test_file
    if test_file is not None and store.head(test_file) is None:
        raise DataError(f"config split.test_file names s3://{store.bucket}/{test_file}, which does not exist")
    report_key = keys.validation_report(dataset, run_id)
    store.put_json(report_key, {**report, "run_id": run_id, "config": config.to_dict()})
    # Parsed once: the typed table goes on as Parquet, so no later stage parses the CSV again.
    table_key = keys.parsed_upload(dataset, run_id)
    with span("write table"):
        parquet = tables.to_parquet(frame)
        store.put_bytes(table_key, parquet, content_type=tables.CONTENT_TYPE)
    table_digests = integrity.table_digest(table_key, parquet)
    del parquet

    return {
        "dataset": dataset,
        "run_id": run_id,
        "duplicate": False,
        "execution_arn": payload.get("execution_arn"),
        "source": {**source, "sha256": digest, "size": size},
        "config": config.to_dict(),
        "target": report["target"],
        "task": report["task"],
        "primary_metric": report["primary_metric"],
        "rows": report["rows"],
        "columns": len(report["columns"]),
        "warnings": len(report["warnings"]),
        "report_key": report_key,
        "table_key": table_key,
        "table_sha256": table_digests,  # integrity.TABLES_KEY: Preprocess checks it
    }


def preprocess(state: ValidatedRun, settings: Settings) -> PreprocessedRun:
    """Stage 2: clean the upload and write the train/test splits and the feature schema."""
    return_large_frees_to_the_system()  # peak memory: the data, not freed copies of it
    release_garbage()  # nor what an earlier invocation left in reference cycles
    from stepml import tables
    from stepml.columns import identifier_columns
    from stepml.preprocessing import feature_schema, ignored_columns, split
    from stepml.validation import read_csv

    store = S3Store(settings)
    config = DatasetConfig.from_dict(state["config"])
    source = state["source"]
    location = f"s3://{source['bucket']}/{source['key']}"
    table_key = state.get("table_key")
    if table_key:
        parquet = integrity.verified_table(store.get_bytes(table_key), table_key, state.get("table_sha256"),
                                           "Validate")
        frame = tables.read_parquet(parquet, f"s3://{store.bucket}/{table_key}", text="category")
        del parquet
    else:  # a run that a Validate from before the Parquet handoff started: parse its upload
        frame = read_csv(store.get_bytes(source["key"], source["version_id"]), location)
    dataset, run_id, target, task = state["dataset"], state["run_id"], state["target"], state["task"]
    test_frame = None
    if config.split.test_file is not None:
        test_location = f"s3://{source['bucket']}/{config.split.test_file}"
        test_frame = read_csv(store.get_bytes(config.split.test_file), test_location)
    ids = identifier_columns(frame, target, config)  # found once, on the whole upload
    release_garbage()  # before the split's copies (2M rows: peak 668 -> 609 MB, memory.release_garbage)
    with span("split"):
        train, test = split(frame, target, task, config, test_frame, ids=ids)
    for name, part in (("training", train), ("test", test)):
        if len(part) < 2 or (name == "training" and len(part) < config.min_rows):
            needed = config.min_rows if name == "training" else 2
            dropped = " drops rows with missing values" if recipes.get(config.recipe).complete_rows_only else ""
            raise DataError(
                f"{location}: only {len(part)} {name} rows remain after cleaning; at least {needed} are "
                f"needed (recipe {config.recipe}{dropped})"
            )
    if task == "classification" and train[target].nunique() < 2:
        raise DataError(f"{location}: after cleaning, target {target!r} has a single class in the training rows")
    schema = feature_schema(train, target)
    train_key = keys.preprocessed(dataset, run_id, "train.parquet")
    test_key = keys.preprocessed(dataset, run_id, "test.parquet")
    schema_key = keys.preprocessed(dataset, run_id, "schema.json")
    split_digests: dict[str, str] = {}
    with span("write splits"):
        for key, part in ((train_key, train), (test_key, test)):
            parquet = tables.to_parquet(part)
            store.put_bytes(key, parquet, content_type=tables.CONTENT_TYPE)
            split_digests.update(integrity.table_digest(key, parquet))
            del parquet
    store.put_json(schema_key, schema)
    train_rows, test_rows = len(train), len(test)
    del train, test  # written: the upload's own columns are all that is read below
    given = len(frame) + (0 if test_frame is None else len(test_frame))
    # The upload's columns that are not model inputs (the API accepts and ignores them in a
    # request): one per column, so it goes through S3 - a wide upload would outgrow the state.
    ignored_key = keys.preprocessed(dataset, run_id, "ignored.json")
    store.put_json(ignored_key, ignored_columns(frame, schema, target, config, ids))
    return {**state, "train_key": train_key, "test_key": test_key, "schema_key": schema_key,
            "ignored_key": ignored_key, "train_rows": train_rows, "test_rows": test_rows,
            "dropped_rows": given - train_rows - test_rows,
            "table_sha256": split_digests}  # integrity.TABLES_KEY: Train and Evaluate check them


def _read_split(store: S3Store, key: str, schema: list[dict[str, Any]], digests: dict[str, str] | None,
                columns: list[str] | None = None) -> Any:
    """A split as Preprocess wrote it (Parquet; its SHA-256 checked against ``digests``, the state's
    :data:`~stepml.integrity.TABLES_KEY`), or only its ``columns``; text and date features as
    text, as the schema says (a ``split.test_file`` column may hold only numbers where the upload's
    holds text). Text features stay categories (a code per cell); the rest of the text (the target)
    is objects, as the estimators and metrics read labels."""
    from stepml import tables

    parquet = integrity.verified_table(store.get_bytes(key), key, digests, "Preprocess")
    frame = tables.read_parquet(parquet, f"s3://{store.bucket}/{key}", columns, text="category")
    del parquet
    features = {f["name"]: f["kind"] for f in schema}
    for name in frame.columns:
        kind = features.get(name)
        if kind in ("categorical", "date"):
            if not tables.is_text(frame[name]) and frame[name].dtype != object:
                frame[name] = tables.as_text(frame[name])
        elif tables.is_text(frame[name]):
            frame[name] = frame[name].astype(object)
    return frame


def train(state: PreprocessedRun, settings: Settings) -> TrainedRun:
    """Stage 3: fit the recipe's pipeline on the training split; stage its artifacts."""
    return_large_frees_to_the_system()  # peak memory: the data, not freed copies of it
    release_garbage()  # nor what an earlier invocation left in reference cycles
    import joblib

    from stepml.preprocessing import numbers_as_floats
    from stepml.training import fit_recorded

    dataset, run_id, task = state["dataset"], state["run_id"], state["task"]
    store = S3Store(settings)
    # The run's primary metric (validation's choice: balanced accuracy for an imbalanced target
    # when the config names none) decides whether the estimator weights the classes.
    config = DatasetConfig.from_dict(state["config"]).with_metric(state.get("primary_metric"))
    schema = store.get_json(state["schema_key"])
    with span("load"):
        frame = _read_split(store, state["train_key"], schema, state.get("table_sha256"))
        numbers_as_floats(frame, schema)  # as the model reads them: shared with its input, not copied
    release_garbage()  # before the fit's copies
    started = time.perf_counter()
    with span("fit"):
        fitted = fit_recorded(frame, state["target"], schema, task, config)
    pipeline, tuning = fitted.pipeline, fitted.tuning
    seconds = time.perf_counter() - started
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer, compress=3)
    # The API serves ONNX: convert, and check it against scikit-learn on the test split.
    from threadpoolctl import threadpool_limits

    from stepml import onnx_export
    from stepml.onnx_verify import reference_key

    # predicting holds OpenMP to the fit's threads: spin-waiting threads on a busy machine burnt
    # 5x the CPU (500k rows: the reference 6.9 -> 1.3 s, Evaluate 49 -> 28 s of CPU)
    with span("export"), threadpool_limits(limits=recipes.OPENMP_THREADS, user_api="openmp"):
        onnx_model = onnx_export.export(pipeline, schema, task)
        # scikit-learn's outputs on the test split (a sample of a large one: onnx_export.PARITY_ROWS);
        # the next stage ("Verify ONNX export", on the onnxruntime layer) runs the graph on the same
        # rows and refuses the model if they disagree.
        test_frame = _read_split(store, state["test_key"], schema, state.get("table_sha256"))
        checked = onnx_export.parity_rows(test_frame, config.split.seed)
        reference = onnx_export.reference(pipeline, checked, schema, task)
        del test_frame, checked
    # Every file in `artifacts` is registered with the version (evaluate_and_register).
    artifacts = {name: keys.staging(dataset, run_id, name) for name in ("model.joblib", "model.onnx")}
    staged = {"model.joblib": buffer.getvalue(), "model.onnx": onnx_model}
    for name, data in staged.items():
        store.put_bytes(artifacts[name], data)
    reference_at = reference_key(dataset, run_id)
    store.put_bytes(reference_at, json.dumps(reference).encode(), content_type="application/json")
    trained: TrainedRun = {
        **state,
        "artifacts": artifacts,
        "artifact_sha256": integrity.digests(staged),  # integrity.STATE_KEY: Evaluate checks them
        "onnx_reference_key": reference_at,
        "train_seconds": round(seconds, 3),
        "model_bytes": len(onnx_model),
    }
    if tuning is not None:
        trained["tuning"] = tuning  # trials, best params, validation score: small JSON
    if fitted.auto_choice is not None:
        trained["auto_choice"] = cast("AutoChoiceSummary", fitted.auto_choice)  # recorded with the version
    return trained


#: Evaluate scores at most this many test rows: a larger test split is scored on a uniform sample
#: of them (seeded by ``split.seed``; the evaluation records ``scored_rows``). Its accuracy is then
#: within ~0.003 of the whole split's (two standard errors at worst), while the prediction was most
#: of Evaluate at 400k test rows (20 of 28 s, 2M-row upload). The Spark job hands 50,000.
SCORED_ROWS = 100_000


def scored_rows(test_frame: Any, config: DatasetConfig) -> Any:
    """The test rows Evaluate scores: all of them, or a seeded sample of :data:`SCORED_ROWS`."""
    if len(test_frame) > SCORED_ROWS:
        return test_frame.sample(n=SCORED_ROWS, random_state=config.split.seed).sort_index()
    return test_frame


def assess(pipeline: Any, train_frame: Any, test_frame: Any, schema: list[dict[str, Any]], task: str,
           target: str, config: DatasetConfig) -> Assessment:
    """What Evaluate learns from the fitted pipeline: hold-out metrics, the schema with what may be
    served missing, and the reference profile. The Spark job computes it where its model's library
    lives (the Lambda layer has no XGBoost) and hands it over (``assessment_key``)."""
    from threadpoolctl import threadpool_limits

    from stepml.evaluation import evaluate, predict
    from stepml.onnx_export import with_nullable
    from stepml.preprocessing import to_model_frame

    test_rows = len(test_frame)
    test_frame = scored_rows(test_frame, config)
    with span("predict"), threadpool_limits(limits=recipes.OPENMP_THREADS, user_api="openmp"):
        # once: the metrics and the profile read the same outputs (the model's run on the test
        # split was most of Evaluate's time, and it ran four times)
        predictions = predict(pipeline, to_model_frame(test_frame, schema), task)
    with span("evaluate"):
        evaluation = _finite(evaluate(pipeline, train_frame, test_frame, target, schema, task,
                                      primary_metric=config.metric_for(task), predictions=predictions))
        if len(test_frame) < test_rows:
            evaluation.update(test_rows=test_rows, scored_rows=len(test_frame))
    with span("profile"):
        profile = _reference_profile(pipeline, train_frame, test_frame, schema, task, evaluation["metrics"],
                                     predictions)
    return {"evaluation": evaluation, "schema": with_nullable(schema, pipeline, config.recipe), "profile": profile}


def evaluate_and_register(state: TrainedRun, settings: Settings) -> RegisteredRun:
    """Stage 4: hold-out metrics, a new registry version (a candidate), and the gate's verdict."""
    return_large_frees_to_the_system()  # peak memory: the data, not freed copies of it
    release_garbage()  # nor what an earlier invocation left in reference cycles
    from stepml.gate import decide
    from stepml.registry import CHAMPION, ModelRegistry

    dataset, run_id, task = state["dataset"], state["run_id"], state["task"]
    store = S3Store(settings)
    staged = {name: store.get_bytes(key) for name, key in state["artifacts"].items()}
    integrity.verify(staged, state["artifacts"], state.get("artifact_sha256"))
    config = DatasetConfig.from_dict(state["config"]).with_metric(state.get("primary_metric"))
    # The gate compares with the current champion; the state machine's Choice reads gate.passed,
    # and the promotion re-checks it atomically against the champion of that moment.
    registry = ModelRegistry(store)
    champion_version = registry.alias_version(dataset, CHAMPION)
    champion = registry.get_version(dataset, champion_version) if champion_version else None
    same_rows: SameRowsComparison | None = None
    fingerprint: dict[str, bytes] = {}
    if state.get("assessment_key"):
        # Trained on Spark: assessed by the job itself; the pipeline is never unpickled here.
        written = store.get_bytes(state["assessment_key"])
        integrity.verify({"assessment.json": written}, {"assessment.json": state["assessment_key"]},
                         state.get("assessment_sha256"))
        assessment = cast("Assessment", json.loads(written))
        if champion is not None:
            metric = assessment["evaluation"]["primary_metric"]
            same_rows = {"version": champion["version"], "metric": metric, "rows": None, "candidate_value": None,
                         "champion_value": None, "champion_trained_on": None, "unseen_only": False,
                         "note": "the candidate was trained and scored by the Spark job, where the champion is not"}
    else:
        import joblib

        from stepml.comparison import compare_on_test_rows, training_rows

        schema = store.get_json(state["schema_key"])
        pipeline = joblib.load(io.BytesIO(staged["model.joblib"]))
        train_frame = _read_split(store, state["train_key"], schema, state.get("table_sha256"))
        test_frame = _read_split(store, state["test_key"], schema, state.get("table_sha256"))
        assessment = assess(pipeline, train_frame, test_frame, schema, task, state["target"], config)
        with span("fingerprint"):
            fingerprint[keys.VERSION_TRAINING_ROWS] = training_rows(train_frame, schema, state["target"], task)
        del train_frame
        if champion is not None:
            with span("compare with champion"):
                same_rows = compare_on_test_rows(
                    registry, champion, pipeline, scored_rows(test_frame, config), schema, task, state["target"],
                    assessment["evaluation"]["primary_metric"],
                    assessment["evaluation"]["metrics"].get(assessment["evaluation"]["primary_metric"]))
    evaluation, profile = assessment["evaluation"], assessment["profile"]
    meta: NewVersion = {
        "dataset": dataset,
        "task": task,
        "target": state["target"],
        "recipe": config.recipe,
        "config": state["config"],
        # what serving may take missing: learned from the fitted pipeline, recorded with the version
        "schema": cast("list[Feature]", assessment["schema"]),
        "ignored_columns": store.get_json(state["ignored_key"]) if state.get("ignored_key") else [],
        "evaluation": evaluation,
        "train_rows": state["train_rows"],
        "test_rows": state["test_rows"],
        "train_seconds": state["train_seconds"],
        "lineage": {**state["source"], "run_id": run_id, "execution_arn": state.get("execution_arn")},
        "libraries": _library_versions(),
        "stepml_version": __version__,
    }
    # The gate's verdict, recorded with the version too, so the registry (API, CLI, UI) can say
    # why a candidate was not promoted, and Promote can reuse the same-rows comparison.
    gate = decide(evaluation, config, champion, same_rows)
    meta["gate"] = gate
    if "auto_choice" in state:
        meta["auto_choice"] = state["auto_choice"]
    if "tuning" in state:  # what tune searched and kept (a few hundred bytes; no trial list)
        meta["tuning"] = state["tuning"]
    # profile.json is registered as an artifact: written (and checksummed) before meta.json, so a
    # visible version always has the reference the monitor compares traffic with.
    artifacts = {**staged, keys.VERSION_PROFILE: json.dumps(profile, sort_keys=True).encode(), **fingerprint}
    with span("register"):
        version = registry.register_version(dataset, run_id, artifacts, meta)["version"]
    return {
        "dataset": dataset,
        "run_id": run_id,
        "version": version,
        "primary_metric": evaluation["primary_metric"],
        "metrics": evaluation["metrics"],
        "baseline": evaluation["baseline"],
        "gate": gate,
    }


def promote(state: RegisteredRun, settings: Settings) -> PromotedRun:
    """Stage 5 (when the gate passed): make the version champion if it still deserves it."""
    from stepml.registry import ModelRegistry

    registry = ModelRegistry(S3Store(settings))
    config = registry.get_version(state["dataset"], state["version"]).get("config", {})
    result = registry.promote_if_better(state["dataset"], state["version"], config, actor=state["run_id"])
    gate: Any = result  # the gate's decision, with ``promoted`` and ``version``
    return {**state, "promoted": result["promoted"], "decision": result["reason"], "gate": gate}


def _reference_profile(pipeline: Any, train_frame: Any, test_frame: Any, schema: list[dict[str, Any]], task: str,
                       metrics: dict[str, Any], predictions: Any = None) -> dict[str, Any]:
    """The version's reference profile (:mod:`stepml.profile`): training values, test predictions
    (``predictions``: :func:`stepml.evaluation.predict`'s on the test split, computed when not given)."""
    from stepml.evaluation import predict
    from stepml.preprocessing import to_model_frame
    from stepml.profile import build_profile

    if predictions is None:
        predictions = predict(pipeline, to_model_frame(test_frame, schema), task)
    predicted = predictions.predicted
    confidence = None
    if predictions.probabilities is not None:
        confidence = float(predictions.probabilities.max(axis=1).mean())
    # the columns themselves: the profile counts them vectorised (a list of Python objects per
    # column was ~30 bytes a cell: 700 MB for 1.6M training rows)
    columns = {f["name"]: train_frame[f["name"]] for f in schema}
    return cast("dict[str, Any]", _finite(build_profile(columns, schema, task, predicted.tolist(), metrics, confidence)))


def _library_versions() -> dict[str, str]:
    import numpy
    import pandas
    import sklearn

    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "scikit-learn": sklearn.__version__,
    }


def _finite(value: Any) -> Any:
    """NaN/Infinity are not JSON: Step Functions would reject the payload. Use null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


__all__ = ["claim_upload", "evaluate_and_register", "parse_upload_event", "preprocess", "promote", "train", "validate_upload"]
