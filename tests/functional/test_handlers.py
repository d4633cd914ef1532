"""Each handler with moto and its sample event from events/: Given an upload, When the stage runs,
Then it writes what the next stage needs and returns the state the next sample event shows."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import pytest

from stepml.errors import ArtifactIntegrityError, ConfigError, DataError
from stepml.integrity import STATE_KEY, digests
from tests.functional.conftest import EVENT_BUCKET, load_event


def with_upload(event: dict[str, Any], upload: dict[str, Any]) -> dict[str, Any]:
    """The sample event, carrying the ETag/version of the object this test really uploaded."""
    event = json.loads(json.dumps(event))
    if "event" in event:
        event["event"]["detail"]["object"].update({"etag": upload["etag"], "version-id": upload["version_id"]})
    else:
        event["source"].update({"etag": upload["etag"], "version_id": upload["version_id"]})
    return event


def comparable(state: dict[str, Any]) -> dict[str, Any]:
    """A stage output without the values that differ per upload or per machine."""
    drop = {"source", "train_seconds", "model_bytes", "warnings", "metrics", "gate", "onnx_verification", STATE_KEY,
            "auto_choice"}  # validation scores: checked below, not to the last digit
    return {k: v for k, v in state.items() if k not in drop}


def test_pipeline_stages_chain_like_their_sample_events(adult_upload, invoke, s3) -> None:
    # Given the Adult sample upload, When each stage runs on its own sample event,
    # Then its output is the next stage's sample event (up to per-upload values).
    outputs = {}
    chain = (("validate", "preprocess"), ("preprocess", "train"), ("train", "verify"), ("verify", "evaluate"),
             ("evaluate", "promote"))
    for stage, following in chain:
        event = with_upload(load_event(stage), adult_upload)
        if STATE_KEY in event:  # the digests of what this test's Train staged, not the sample's
            event[STATE_KEY] = outputs["train"][STATE_KEY]
        outputs[stage] = invoke(stage, event)
        assert comparable(outputs[stage]) == comparable(load_event(following)), stage
    evaluated = outputs["evaluate"]
    assert evaluated["version"] == 1 and evaluated["gate"]["passed"] is True
    assert evaluated["metrics"]["accuracy"] > evaluated["baseline"]["accuracy"]
    assert 0.75 < evaluated["metrics"]["roc_auc"] <= 1.0

    result = invoke("promote", load_event("promote"))
    assert result["promoted"] is True and "first version" in result["decision"]
    listed = s3.list_objects_v2(Bucket=EVENT_BUCKET, Prefix="models/adult/")["Contents"]
    names = {item["Key"] for item in listed}
    assert {"models/adult/version-1/model.joblib", "models/adult/version-1/meta.json",
            "models/adult/aliases/champion.json"} <= names
    # The gate's verdict travels with the version, so the registry can say why one is a candidate.
    meta = json.loads(s3.get_object(Bucket=EVENT_BUCKET, Key="models/adult/version-1/meta.json")["Body"].read())
    assert meta["gate"]["passed"] is True and "first version" in meta["gate"]["reason"]
    # And so does what the auto recipe chose on its validation split (the family that scored best)
    assert meta["auto_choice"] == load_event("evaluate")["auto_choice"]
    choice = outputs["train"]["auto_choice"]
    assert choice["validation_rows"] == 320 and set(choice["families"]) == {"trees", "linear", "blend", "forest"}
    assert choice["families"][choice["family"]] == max(choice["families"].values())
    report = json.loads(s3.get_object(Bucket=EVENT_BUCKET, Key=outputs["validate"]["report_key"])["Body"].read())
    workclass = next(c for c in report["columns"] if c["name"] == "workclass")
    assert workclass["missing"] > 0  # '?' was read as missing


def test_preprocess_reads_the_parsed_table_not_the_csv_and_a_state_from_before_still_runs(adult_upload, invoke, s3) -> None:
    # Given the Adult sample upload validated: its parsed table is in S3 as Parquet
    validated = invoke("validate", with_upload(load_event("validate"), adult_upload))
    table = s3.get_object(Bucket=EVENT_BUCKET, Key=validated["table_key"])["Body"].read()
    assert validated["table_key"].startswith("preprocessed/adult/") and table[:4] == b"PAR1"
    # When Preprocess runs on that state, Then its splits are Parquet too
    preprocessed = invoke("preprocess", validated)
    assert preprocessed["train_key"].endswith("train.parquet") and preprocessed["test_key"].endswith("test.parquet")
    # And a state a Validate from before the handoff wrote (no table_key) parses the upload instead
    older = {k: v for k, v in validated.items() if k != "table_key"}
    assert invoke("preprocess", older)["train_rows"] == preprocessed["train_rows"]


def test_a_parquet_table_changed_between_the_stages_is_refused_before_it_is_parsed(
        adult_upload, invoke, s3, monkeypatch) -> None:
    # Given the Adult sample upload validated and preprocessed: each Parquet table's SHA-256 in the state
    validated = invoke("validate", with_upload(load_event("validate"), adult_upload))
    assert set(validated["table_sha256"]) == {"upload.parquet"}
    preprocessed = invoke("preprocess", validated)
    assert set(preprocessed["table_sha256"]) == {"train.parquet", "test.parquet"}
    # When a table's bytes change in the bucket (a damaged footer: fastparquet's compiled parser
    # trusts it), Then the next stage refuses it, naming the object, and fastparquet never sees it
    import fastparquet

    parse = fastparquet.ParquetFile
    for stage, state, key in (("preprocess", validated, validated["table_key"]),
                              ("train", preprocessed, preprocessed["train_key"]),
                              ("train", preprocessed, preprocessed["test_key"])):
        written = s3.get_object(Bucket=EVENT_BUCKET, Key=key)["Body"].read()
        damaged = written[:-12] + bytes(4) + written[-8:]  # the footer's last bytes zeroed, the frame intact

        def guarded(source: Any, *args: Any, damaged: bytes = damaged, **kwargs: Any) -> Any:
            assert source.getvalue() != damaged, "a table that failed its digest reached fastparquet"
            return parse(source, *args, **kwargs)

        s3.put_object(Bucket=EVENT_BUCKET, Key=key, Body=damaged)
        with monkeypatch.context() as patched:
            patched.setattr(fastparquet, "ParquetFile", guarded)
            with pytest.raises(ArtifactIntegrityError, match=f"{key} changed after "):
                invoke(stage, state)
        s3.put_object(Bucket=EVENT_BUCKET, Key=key, Body=written)
    # And a state without the digests is refused as well: no table is parsed unchecked
    unchecked = {k: v for k, v in preprocessed.items() if k != "table_sha256"}
    with pytest.raises(ArtifactIntegrityError, match="carries no table_sha256.*Preprocess hands"):
        invoke("train", unchecked)
    # And with the tables as written, the stages run on
    assert invoke("train", preprocessed)["train_rows"] == preprocessed["train_rows"]


def test_validate_rejects_a_csv_without_the_configured_target(adult_upload, invoke, s3) -> None:
    s3.put_object(Bucket=EVENT_BUCKET, Key="config/adult.yaml", Body=b"target: salary\n")
    with pytest.raises(DataError, match="no target column 'salary'.*income"):
        invoke("validate", with_upload(load_event("validate"), adult_upload))


def test_validate_rejects_a_bad_config_key(adult_upload, invoke, s3) -> None:
    s3.put_object(Bucket=EVENT_BUCKET, Key="config/adult.yaml", Body=b"targt: income\n")
    with pytest.raises(ConfigError, match="unknown key.*targt"):
        invoke("validate", with_upload(load_event("validate"), adult_upload))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "is empty"),
        (b"age,income\n", "header but no data rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a CSV"),
        (b"age;income\n1;a\n2;b\n", "semicolons"),
    ],
)
def test_validate_names_the_problem_with_a_bad_upload(s3, invoke, body: bytes, message: str) -> None:
    put = s3.put_object(Bucket=EVENT_BUCKET, Key="raw/adult/adult.csv", Body=body)
    event = with_upload(load_event("validate"), {"etag": put["ETag"].strip('"'), "version_id": put["VersionId"]})
    with pytest.raises(DataError, match=message) as raised:
        invoke("validate", event)
    assert "raw/adult/adult.csv" in str(raised.value)


def emitted(output: str) -> dict[str, list[dict[str, Any]]]:
    """The JSON lines a handler printed: its log lines and its embedded-metric-format documents."""
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return {"logs": [line for line in lines if "_aws" not in line], "metrics": [line for line in lines if "_aws" in line]}


def metric(documents: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The one EMF document holding metric ``name``, each metric's values as one number."""
    found = [doc for doc in documents if name in doc]
    assert len(found) == 1, f"{name}: {len(found)} documents"
    directive = found[0]["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "stepml"
    names = {entry["Name"] for entry in directive["Metrics"]}
    return {key: (sum(value) if key in names and isinstance(value, list) else value) for key, value in found[0].items()}


def test_inference_handler_serves_the_sample_request_after_a_retried_evaluate(adult_upload, invoke, s3, capsys) -> None:
    # Powertools' Logger keeps the stream it found first (an earlier test's captured stdout, maybe
    # closed by now: assigned, not setStream(), which would flush the old one first).
    for handler in logging.getLogger("stepml").handlers:
        handler.stream = sys.stdout  # type: ignore[attr-defined]
    state = validated = invoke("validate", with_upload(load_event("validate"), adult_upload))
    for stage in ("preprocess", "train", "verify"):
        state = invoke(stage, state)
    first = invoke("evaluate", state)
    pipeline = emitted(capsys.readouterr().out)
    # Evaluate runs again for the same run (Step Functions retries a task whose answer was lost):
    # both answers name the same version, and the registry holds that one version only.
    state = invoke("evaluate", state)
    capsys.readouterr()
    assert first["version"] == state["version"] == 1
    listed = s3.list_objects_v2(Bucket=EVENT_BUCKET, Prefix="models/adult/", Delimiter="/")["CommonPrefixes"]
    assert sorted(p["Prefix"] for p in listed) == ["models/adult/runs/", "models/adult/version-1/"]
    state = invoke("promote", state)
    promoted = emitted(capsys.readouterr().out)

    event = load_event("inference")
    record = json.loads(event["body"])
    event["body"] = json.dumps({"instances": [record, {**record, "workclass": "Astronaut"}]})
    response = invoke("inference", event)
    served = emitted(capsys.readouterr().out)

    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["model"] == "adult" and body["version"] == 1
    assert body["predictions"][0] in {"<=50K", ">50K"}
    assert set(body["probabilities"][0]) == {"<=50K", ">50K"}
    # Every stage counted what it did, under namespace stepml with dimensions service and stage ...
    trained = metric(pipeline["metrics"], "TrainingSeconds")
    assert [set(names) for names in trained["_aws"]["CloudWatchMetrics"][0]["Dimensions"]] == [{"service", "stage"}]
    assert trained["stage"] == "train" and trained["TrainingSeconds"] > 0 and trained["ModelBytes"] > 1000
    assert metric(pipeline["metrics"], "RowsValidated")["RowsValidated"] == validated["rows"] > 0
    assert metric(pipeline["metrics"], "GatePassed")["GatePassed"] == 1
    assert metric(promoted["metrics"], "Promotions")["Promotions"] == 1
    # ... and each stage's log lines name the run they belong to.
    trained_log = next(line for line in pipeline["logs"] if line["message"] == "model trained")
    assert trained_log["run_id"] == state["run_id"] and trained_log["stage"] == "train"
    assert trained_log["correlation_id"] in {state["run_id"], load_event("train").get("execution_arn")}
    # The prediction function counts rows served and categories unseen in training, per model.
    predictions = metric(served["metrics"], "Predictions")
    assert predictions["Predictions"] == 2 and predictions["UnseenCategories"] == 1
    assert predictions["model"] == "adult" and predictions["stage"] == "inference"
    assert [set(names) for names in predictions["_aws"]["CloudWatchMetrics"][0]["Dimensions"]] == [
        {"service", "stage", "model"}]


def test_inference_handler_says_which_model_is_missing(s3, invoke) -> None:
    response = invoke("inference", load_event("inference"))
    assert response["statusCode"] == 404
    assert "adult" in json.loads(response["body"])["message"]


def test_the_same_object_version_delivered_twice_trains_once(adult_upload, invoke) -> None:
    event = with_upload(load_event("validate"), adult_upload)
    first = invoke("validate", event)
    again = invoke("validate", {**event, "run_id": "a-second-delivery"})
    assert first["duplicate"] is False
    assert again["duplicate"] is True and again["original_run"] == first["run_id"]
    # A retry of the same run is not a duplicate of itself.
    assert invoke("validate", event)["duplicate"] is False


def test_evaluate_refuses_a_staged_model_changed_after_train(invoke, s3) -> None:
    # Given Evaluate's sample state, whose digests are those of the files Train staged
    state = load_event("evaluate")
    staged = {"model.joblib": b"the pickle Train wrote", "model.onnx": b"the graph Train wrote"}
    for name, data in staged.items():
        s3.put_object(Bucket=EVENT_BUCKET, Key=state["artifacts"][name], Body=data)
    s3.put_object(Bucket=EVENT_BUCKET, Key=state["schema_key"], Body=b"{}")
    state[STATE_KEY] = digests(staged)
    # When the staged pickle is replaced in the bucket before Evaluate reads it
    tampered = state["artifacts"]["model.joblib"]
    s3.put_object(Bucket=EVENT_BUCKET, Key=tampered, Body=b"another pickle, written by someone else")
    # Then Evaluate refuses it, naming the object, before loading it (loading would run the pickle)
    with pytest.raises(ArtifactIntegrityError, match=f"{tampered} changed after Train wrote it"):
        invoke("evaluate", state)
    # And no version was registered
    assert "Contents" not in s3.list_objects_v2(Bucket=EVENT_BUCKET, Prefix="models/")
    # And a state without digests is refused as well: nothing unchecked is loaded
    unchecked = {k: v for k, v in state.items() if k != STATE_KEY}
    with pytest.raises(ArtifactIntegrityError, match="carries no artifact_sha256"):
        invoke("evaluate", unchecked)


def test_evaluate_registers_a_spark_trained_model_from_its_assessment_without_unpickling_it(invoke, s3) -> None:
    # Given a state as the Spark job hands it over: its pickle needs XGBoost, which the Lambda layer
    # lacks - here it is not a pickle at all, so loading it would fail - and the job's own assessment
    state = load_event("evaluate")
    staged = {"model.joblib": b"an XGBoost pipeline the layer could not unpickle", "model.onnx": b"its graph"}
    for name, data in staged.items():
        s3.put_object(Bucket=EVENT_BUCKET, Key=state["artifacts"][name], Body=data)
    schema = [{"name": "size", "kind": "numeric", "dtype": "float64", "nullable": True, "required": False}]
    evaluation = {"primary_metric": "rmse", "higher_is_better": False, "metrics": {"rmse": 12.5, "r2": 0.97},
                  "baseline": {"rmse": 80.0, "r2": 0.0}, "test_rows": 600, "train_rows": 2400}
    assessment = json.dumps({"evaluation": evaluation, "schema": schema,
                             "profile": {"schema": 1, "rows": 3, "features": [], "metrics": evaluation["metrics"]}}).encode()
    key = state["artifacts"]["model.joblib"].rsplit("/", 1)[0] + "/assessment.json"
    s3.put_object(Bucket=EVENT_BUCKET, Key=key, Body=assessment)
    s3.put_object(Bucket=EVENT_BUCKET, Key=state["ignored_key"], Body=b"[]")
    state.update({STATE_KEY: digests(staged), "assessment_key": key, "config": {**state["config"], "engine": "spark"},
                  "assessment_sha256": digests({"assessment.json": assessment}), "task": "regression"})

    # When Evaluate runs, Then it registers a version from the assessment, with its profile
    result = invoke("evaluate", state)
    assert result["version"] == 1 and result["metrics"] == {"rmse": 12.5, "r2": 0.97}
    meta = json.loads(s3.get_object(Bucket=EVENT_BUCKET, Key="models/adult/version-1/meta.json")["Body"].read())
    assert meta["schema"] == schema and "profile.json" in meta["artifacts"]

    # And an assessment changed after the job wrote it is refused like a changed model
    s3.put_object(Bucket=EVENT_BUCKET, Key=key, Body=assessment.replace(b"12.5", b"1.5"))
    with pytest.raises(ArtifactIntegrityError, match="changed after"):
        invoke("evaluate", {**state, "run_id": "another-run"})
