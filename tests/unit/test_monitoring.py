"""The monitor, on a real classifier: Adult's reference profile, traffic drawn from held-out rows.

Given a model trained by stepml on part of UCI Adult, with the reference profile the pipeline
stores with each version, When held-out rows arrive as captured requests (the capture format of
issue #17), Then traffic from the training distribution raises no alarm, the same traffic with one
feature shifted raises a drift alarm naming that feature, and labels fed back make the true
accuracy appear beside the label-free estimate, which is within 0.03 of it.
"""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from stepml import keys, monitoring, profile
from stepml.config import DatasetConfig, MonitoringConfig, parse_config
from stepml.errors import ConfigError, DataError, NotFoundError
from stepml.registry import CHAMPION, ModelRegistry
from stepml.storage import DirectoryStore

MODEL = "adult"
NOW = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def adult(adult_csv: Path) -> dict[str, Any]:
    """A model fitted as the pipeline fits it (recipe auto) on 5,000 Adult rows, its profile as
    "Evaluate and register" computes it on 3,000 test rows, and 4,000 other rows as traffic."""
    from stepml.columns import MISSING_MARKERS
    from stepml.evaluation import evaluate
    from stepml.preprocessing import feature_schema
    from stepml.stages import _reference_profile
    from stepml.training import fit_with_config

    frame = pd.read_csv(adult_csv, na_values=MISSING_MARKERS, keep_default_na=False)
    order = np.random.default_rng(7).permutation(len(frame))
    train, test, traffic = (frame.iloc[order[a:b]].reset_index(drop=True)
                            for a, b in ((0, 5000), (5000, 8000), (8000, 12000)))
    schema = feature_schema(train, "income")
    pipeline, _ = fit_with_config(train, "income", schema, "classification", DatasetConfig())
    with threadpool_limits(limits=1, user_api="openmp"):
        evaluation = evaluate(pipeline, train, test, "income", schema, "classification")
        reference = _reference_profile(pipeline, train, test, schema, "classification", evaluation["metrics"])
    return {"pipeline": pipeline, "schema": schema, "profile": reference, "traffic": traffic,
            "evaluation": evaluation}


def captures(adult: dict[str, Any], rows: pd.DataFrame, per_request: int = 4, mode: str = "full",
             version: int = 1) -> list[dict[str, Any]]:
    """Capture records (issue #17's format) of ``rows`` predicted by the model, a few rows each."""
    from stepml.preprocessing import to_model_frame

    pipeline, schema = adult["pipeline"], adult["schema"]
    names = [f["name"] for f in schema]
    with threadpool_limits(limits=1, user_api="openmp"):  # OpenMP threads crawl on a busy machine
        probabilities = pipeline.predict_proba(to_model_frame(rows, schema))
    classes = [str(c) for c in pipeline.classes_]
    records = []
    for start in range(0, len(rows), per_request):
        chunk = rows.iloc[start:start + per_request]
        inputs = [{n: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for n, v in zip(names, row)}
                  for row in chunk[names].itertuples(index=False)]
        chunk_probabilities = probabilities[start:start + per_request]
        records.append({
            "stepml_capture": 1,
            "time": (NOW - timedelta(minutes=90) + timedelta(seconds=start)).isoformat().replace("+00:00", "Z"),
            "request_id": uuid.uuid4().hex, "caller": "arn:aws:iam::123456789012:user/alice",
            "model": MODEL, "version": version, "alias": "champion", "task": "classification", "mode": mode,
            "inputs": inputs if mode == "full" else None,
            "input_hashes": None if mode == "full" else ["0" * 64] * len(chunk),
            "outputs": [classes[int(np.argmax(p))] for p in chunk_probabilities],
            "probabilities": [dict(zip(classes, map(float, p))) for p in chunk_probabilities],
            "warnings": [], "latency_ms": 0.4 + (start % 7) / 10, "status": 200,
        })
    return records


def report_of(adult: dict[str, Any], records: list[dict[str, Any]],
              labels: dict[tuple[str, int], Any] | None = None) -> dict[str, Any]:
    return monitoring.build_report(MODEL, 1, adult["profile"], records, labels or {}, MonitoringConfig(),
                                   NOW - timedelta(hours=24), NOW)


def test_the_profile_summarises_every_feature_and_the_predictions(adult: dict[str, Any]) -> None:
    reference = adult["profile"]
    by_name = {f["name"]: f for f in reference["features"]}
    assert set(by_name) == {f["name"] for f in adult["schema"]} and reference["rows"] == 5000
    age = by_name["age"]
    assert age["kind"] == "numeric" and len(age["edges"]) == 11 and len(age["frequencies"]) == 10
    assert age["edges"][0] == age["min"] == 17 and age["edges"][-1] == age["max"]
    assert sum(age["frequencies"]) == pytest.approx(1)
    country = by_name["native-country"]
    assert country["kind"] == "categorical" and len(country["categories"]) == profile.TOP_CATEGORIES + 1
    assert country["categories"][0] == "United-States" and country["categories"][-1] == profile.OTHER
    assert 0 < country["missing_rate"] < 0.05  # Adult writes '?' for an unknown country
    assert reference["prediction"]["kind"] == "categorical"
    assert set(reference["prediction"]["categories"]) >= {"<=50K", ">50K"}
    assert reference["metrics"]["accuracy"] == adult["evaluation"]["metrics"]["accuracy"]


def test_traffic_from_the_training_distribution_raises_no_alarm(adult: dict[str, Any]) -> None:
    report = report_of(adult, captures(adult, adult["traffic"].iloc[:2000]))

    assert report["alarms"] == [] and report["insufficient_data"] is False
    assert report["volume"]["requests"] == 500 and report["volume"]["rows"] == 2000
    assert report["volume"]["by_version"] == {"1": 2000}
    assert all(f["psi"] < 0.05 and not f["drifted"] for f in report["features"])
    assert report["prediction"]["psi"] < 0.05
    assert report["latency_ms"]["p50"] == pytest.approx(0.7) and report["latency_ms"]["p99"] <= 1.0
    assert sum(h["requests"] for h in report["traffic"]) == 500
    # worst first
    psis = [f["psi"] for f in report["features"]]
    assert psis == sorted(psis, reverse=True)


def test_one_shifted_feature_raises_a_drift_alarm_naming_it(adult: dict[str, Any]) -> None:
    rows = adult["traffic"].iloc[:2000].copy()
    rows["hours-per-week"] = rows["hours-per-week"] + 25

    report = report_of(adult, captures(adult, rows))

    drifts = [a for a in report["alarms"] if a["kind"] == "drift" and a["feature"] is not None]
    assert [a["feature"] for a in drifts] == ["hours-per-week"]
    assert drifts[0]["value"] > 0.2 and "hours-per-week" in drifts[0]["message"]
    worst = report["features"][0]
    assert worst["name"] == "hours-per-week" and worst["drifted"] and worst["distance_name"] == "wasserstein"
    assert worst["out_of_range_rate"] > 0.01  # 99 hours is the most Adult has


def test_unseen_categories_and_missing_values_are_counted(adult: dict[str, Any]) -> None:
    rows = adult["traffic"].iloc[:1000].copy()
    rows.loc[:299, "workclass"] = "Astronaut"
    rows.loc[300:399, "occupation"] = None

    report = report_of(adult, captures(adult, rows))

    by_name = {f["name"]: f for f in report["features"]}
    assert by_name["workclass"]["unseen_rate"] == pytest.approx(0.3, abs=0.02)  # of the present values
    assert by_name["workclass"]["distance_name"] == "jensen_shannon" and by_name["workclass"]["drifted"]
    assert by_name["occupation"]["missing_rate"]["current"] > by_name["occupation"]["missing_rate"]["reference"] + 0.05


def test_text_sent_with_spaces_around_it_is_the_category_it_names_not_drift(adult: dict[str, Any]) -> None:
    # Given traffic whose text a client pads (" Private", "Sales "): the API serves it trimmed
    rows = adult["traffic"].iloc[:2000].copy()
    for name, pad in (("workclass", lambda text: " " + text), ("occupation", lambda text: text + " ")):
        present = rows[name].notna()
        rows[name] = rows[name].astype(object)
        rows.loc[present, name] = rows.loc[present, name].astype(str).map(pad)

    report = report_of(adult, captures(adult, rows))

    by_name = {f["name"]: f for f in report["features"]}
    assert by_name["workclass"]["unseen_rate"] == 0.0 and by_name["occupation"]["unseen_rate"] == 0.0
    assert not by_name["workclass"]["drifted"] and not by_name["occupation"]["drifted"]


def test_rows_sent_as_they_stand_in_the_csv_are_read_as_the_api_served_them(adult: dict[str, Any]) -> None:
    # Given the same traffic sent as JSON numbers and nulls, and as a CSV's cells: numbers as text
    # ("77,516", "$2,174"), missing values as "NA", "?" or "", a padded header name (" age ")
    records = captures(adult, adult["traffic"].iloc[:1000])
    markers = ["NA", "?", "", "n/a"]

    def as_written(name: str, value: Any, row: int) -> Any:
        if value is None:
            return markers[row % len(markers)]
        if isinstance(value, (int, float)):
            return f"${value:,}" if name == "capital-gain" else f"{value:,}"
        return value

    written = [{**record, "inputs": [{(" age " if name == "age" else name): as_written(name, value, row)
                                      for name, value in inputs.items()}
                                     for row, inputs in enumerate(record["inputs"])]}
               for record in records]

    # Then monitoring reads them as the API served them: the same drift, missing and unseen rates
    assert report_of(adult, written)["features"] == report_of(adult, records)["features"]


def test_labels_fed_back_give_the_true_accuracy_beside_the_estimate(adult: dict[str, Any]) -> None:
    rows = adult["traffic"]
    records = captures(adult, rows)
    labels = {(r["request_id"], i): actual for r, start in zip(records, range(0, len(rows), 4))
              for i, actual in enumerate(rows["income"].iloc[start:start + 4])}

    performance = report_of(adult, records, labels)["performance"]

    assert performance["metric"] == "accuracy" and performance["labelled_rows"] == 4000
    assert performance["true"] is not None and performance["estimated"] is not None
    assert abs(performance["estimated"] - performance["true"]) <= 0.03
    assert performance["by_version"]["1"]["true"] == performance["true"]
    assert abs(performance["reference"] - performance["true"]) < 0.03


def test_hashed_captures_give_volume_but_no_feature_drift(adult: dict[str, Any]) -> None:
    report = report_of(adult, captures(adult, adult["traffic"].iloc[:400], mode="hashed"))

    assert report["features"] == [] and "hashed" in report["note"]
    assert report["volume"]["rows"] == 400 and report["performance"]["estimated"] is not None


def test_too_few_rows_raise_no_drift_alarm(adult: dict[str, Any]) -> None:
    rows = adult["traffic"].iloc[:40].copy()
    rows["age"] = 90
    report = report_of(adult, captures(adult, rows))
    assert report["insufficient_data"] is True
    assert not [a for a in report["alarms"] if a["kind"] == "drift"]
    assert report["features"][0]["name"] == "age" and report["features"][0]["drifted"]


def _registered(store: DirectoryStore, adult: dict[str, Any]) -> None:
    registry = ModelRegistry(store)
    meta: Any = {"dataset": MODEL, "task": "classification", "target": "income", "recipe": "auto", "config": {},
                 "schema": adult["schema"], "ignored_columns": [], "evaluation": adult["evaluation"],
                 "train_rows": 5000, "test_rows": 3000, "train_seconds": 1.0, "lineage": {}, "libraries": {},
                 "stepml_version": "test"}
    artifacts = {keys.VERSION_PROFILE: json.dumps(adult["profile"]).encode()}
    version = registry.register_version(MODEL, "run-1", artifacts, meta)["version"]
    registry.set_alias(MODEL, CHAMPION, version, "test")


def _write_captures(store: DirectoryStore, records: list[dict[str, Any]], compress: bool) -> None:
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    name = "part-0.gz" if compress else "part-0.jsonl"
    store.put_bytes(f"{keys.capture_day_prefix(MODEL, NOW.date().isoformat())}{name}",
                    gzip.compress(body) if compress else body)


def test_a_run_reads_gzip_captures_and_both_feedback_formats_and_writes_the_report(
    tmp_path: Path, adult: dict[str, Any]
) -> None:
    store = DirectoryStore(tmp_path)
    _registered(store, adult)
    rows = adult["traffic"].iloc[:800]
    records = captures(adult, rows)
    _write_captures(store, records, compress=True)
    truth = rows["income"].tolist()
    jsonl = "".join(json.dumps({"request_id": r["request_id"], "row": i, "actual": truth[n * 4 + i],
                                "time": "2026-11-26T18:00:00Z", "caller": None}) + "\n"
                    for n, r in enumerate(records[:100]) for i in range(4))
    store.put_bytes(f"{keys.feedback_prefix(MODEL)}dt=2026-11-26/{uuid.uuid4()}.jsonl", jsonl.encode())
    lines = ["request_id,row,actual"] + [f"{r['request_id']},{i},{truth[(100 + n) * 4 + i]}"
                                         for n, r in enumerate(records[100:150]) for i in range(4)]
    store.put_bytes(f"{keys.feedback_prefix(MODEL)}bulk.csv", ("\n".join([*lines, "abc,x,>50K"]) + "\n").encode())

    report = monitoring.run_monitor(store, MODEL, NOW - timedelta(hours=24), NOW)

    assert report["volume"]["rows"] == 800 and report["champion_version"] == 1
    assert report["performance"]["labelled_rows"] == 600 and report["performance"]["true"] > 0.8
    assert report["problems"] == [("feedback/adult/bulk.csv line 202: needs a request_id, a whole-number row and "
                                  "an actual value")]
    assert store.get_json(keys.monitoring_latest(MODEL)) == report
    (written,) = list(store.list_keys(f"{keys.MONITORING_PREFIX}{MODEL}/reports/"))
    assert store.get_json(written) == report


def test_the_config_sets_the_thresholds(tmp_path: Path, adult: dict[str, Any]) -> None:
    store = DirectoryStore(tmp_path)
    _registered(store, adult)
    _write_captures(store, captures(adult, adult["traffic"].iloc[:400]), compress=False)
    store.put_bytes(keys.config(MODEL), b"monitoring:\n  psi_threshold: 0.0001\n  min_rows: 10\n")

    report = monitoring.run_monitor(store, MODEL, NOW - timedelta(hours=24), NOW)

    assert {a["feature"] for a in report["alarms"] if a["kind"] == "drift"} >= {"age", "workclass"}
    assert all(a["threshold"] == 0.0001 for a in report["alarms"] if a["kind"] == "drift")
    subject, body = monitoring.alarm_message(report)
    assert subject.startswith("stepml: adult monitor raised") and "feature 'age' drifted" in body


def test_a_model_without_a_champion_or_profile_is_a_clear_error(tmp_path: Path, adult: dict[str, Any]) -> None:
    store = DirectoryStore(tmp_path)
    with pytest.raises(NotFoundError, match="no model named 'adult'"):
        monitoring.run_monitor(store, MODEL)
    registry = ModelRegistry(store)
    meta: Any = {"dataset": MODEL, "schema": []}
    registry.set_alias(MODEL, CHAMPION, registry.register_version(MODEL, "r", {}, meta)["version"], "test")
    with pytest.raises(NotFoundError, match="version 1 has no reference profile"):
        monitoring.run_monitor(store, MODEL)


def test_since_takes_a_duration_or_an_iso_time() -> None:
    assert monitoring.parse_since("24h", NOW) == NOW - timedelta(hours=24)
    assert monitoring.parse_since("90m", NOW) == NOW - timedelta(minutes=90)
    assert monitoring.parse_since("2026-11-26T12:00:00Z", NOW) == datetime(2026, 11, 26, 12, tzinfo=UTC)
    for bad, why in (("yesterday", "neither a duration"), ("2027-01-01T00:00:00Z", "not in the past"),
                     ("60d", "more than 31 days")):
        with pytest.raises(DataError, match=why):
            monitoring.parse_since(bad, NOW)


def test_a_bad_monitoring_config_names_the_key() -> None:
    with pytest.raises(ConfigError, match="'monitoring.psi_threshold'"):
        parse_config("monitoring:\n  psi_threshold: -1\n")
    with pytest.raises(ConfigError, match="unknown key 'monitoring.psi'; allowed: accuracy_drop"):
        parse_config("monitoring:\n  psi: 0.1\n")


def test_psi_is_zero_for_equal_distributions_and_grows_with_the_shift() -> None:
    reference = [0.25, 0.25, 0.25, 0.25]
    assert monitoring.psi(reference, reference) == 0
    assert 0 < monitoring.psi(reference, [0.3, 0.3, 0.2, 0.2]) < monitoring.psi(reference, [0.7, 0.1, 0.1, 0.1])
    assert np.isfinite(monitoring.psi(reference, [1.0, 0.0, 0.0, 0.0]))


def test_unreadable_capture_lines_and_records_are_skipped_and_named(tmp_path: Path, adult: dict[str, Any]) -> None:
    store = DirectoryStore(tmp_path)
    _registered(store, adult)
    good = captures(adult, adult["traffic"].iloc[:200])
    bad = {**good[0], "request_id": "broken", "probabilities": [{"<=50K": "high"}]}
    text = "START RequestId: 1 Version: $LATEST\n{not json\n" + json.dumps(bad) + "\n"
    text += "".join(json.dumps(r) + "\n" for r in good)
    key = f"{keys.capture_day_prefix(MODEL, NOW.date().isoformat())}mixed.jsonl"
    store.put_bytes(key, text.encode())

    report = monitoring.run_monitor(store, MODEL, NOW - timedelta(hours=24), NOW)

    assert report["volume"]["requests"] == 50 and report["volume"]["rows"] == 200
    assert report["problems"] == [f"{key} line 1: not JSON", f"{key} line 2: not JSON",
                                  (f"{key}: request 'broken' skipped: probabilities holds a row that is not "
                                  "{class: number}")]


def test_a_label_given_again_replaces_the_earlier_one_in_arrival_order_then_bulk_files(tmp_path: Path) -> None:
    from stepml import feedback

    store = DirectoryStore(tmp_path)
    start = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    # ten corrections of one label within one day: their uuids sort at random, their times do not
    for minute in range(10):
        feedback.store_items(store, MODEL, [{"request_id": "r1", "row": 0, "actual": minute}], None,
                             now=start + timedelta(minutes=minute))
    feedback.store_items(store, MODEL, [{"request_id": "r2", "row": 0, "actual": "api"}], None, now=start)
    assert monitoring.load_feedback(store, MODEL, []) == {("r1", 0): 9, ("r2", 0): "api"}
    # a bulk file uploaded under feedback/<model>/ corrects the API's labels, whatever its name
    store.put_bytes(f"{keys.feedback_prefix(MODEL)}a-corrections.csv", b"request_id,row,actual\nr2,0,bulk\n")
    assert monitoring.load_feedback(store, MODEL, []) == {("r1", 0): 9, ("r2", 0): "bulk"}
