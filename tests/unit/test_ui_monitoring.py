"""The Monitor page's reading of capture files and monitor reports (issue #17's shared formats)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

_MODULE = Path(__file__).resolve().parents[2] / "ui" / "stepml_ui" / "monitoring.py"
_spec = importlib.util.spec_from_file_location("stepml_ui_monitoring", _MODULE)
assert _spec is not None and _spec.loader is not None
monitoring = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = monitoring  # dataclasses look their module up while the class is built
_spec.loader.exec_module(monitoring)

KEY = "capture/adult/dt=2026-11-26/part-0"


def capture(number: int, caller: str | None = "arn:aws:iam::123456789012:user/alice", **fields: object) -> dict:
    return {"stepml_capture": 1, "time": f"2026-11-26T1{number}:00:00.000Z", "request_id": f"r{number}",
            "caller": caller, "model": "adult", "version": 2, "alias": "champion", "task": "classification",
            "mode": "full", "inputs": [{"age": 39}], "input_hashes": None, "outputs": ["<=50K"],
            "probabilities": [{"<=50K": 0.9, ">50K": 0.1}], "warnings": [], "latency_ms": 0.4, "status": 200,
            **fields}


def test_plain_and_gzip_files_give_the_same_records() -> None:
    lines = "".join(json.dumps(capture(n)) + "\n" for n in range(3)).encode()
    plain = monitoring.parse_capture_file(KEY, lines)
    packed = monitoring.parse_capture_file(KEY + ".gz", gzip.compress(lines[:40]) + gzip.compress(lines[40:]))
    assert [r["request_id"] for r in plain.records] == ["r0", "r1", "r2"] and plain.problems == []
    assert packed.records == plain.records and packed.problems == []
    assert plain.records[1]["time"] == datetime(2026, 11, 26, 11, tzinfo=UTC)


def test_records_back_to_back_and_in_cloudwatch_envelopes_are_read_and_other_log_lines_skipped() -> None:
    envelope = {"messageType": "DATA_MESSAGE", "logEvents": [
        {"id": "1", "message": json.dumps(capture(4))}, {"id": "2", "message": "START RequestId: x"},
        {"id": "3", "message": json.dumps({"level": "INFO", "message": "loaded model"})}]}
    data = (json.dumps(capture(1)) + json.dumps(capture(2)) + "\n" + json.dumps({"level": "INFO"}) + "\n"
            + json.dumps(envelope)).encode()
    found = monitoring.parse_capture_file(KEY, data)
    assert [r["request_id"] for r in found.records] == ["r1", "r2", "r4"] and found.problems == []


def test_unreadable_lines_are_named_by_file_and_line_and_the_rest_is_kept() -> None:
    data = "\n".join([json.dumps(capture(1)), "{not json", json.dumps(capture(2, stepml_capture=2)),
                      json.dumps(capture(3, time="yesterday")), json.dumps(capture(5))]).encode()
    found = monitoring.parse_capture_file(KEY, data)
    assert [r["request_id"] for r in found.records] == ["r1", "r5"]
    assert found.problems[0].startswith(f"{KEY} line 2: not JSON")
    assert found.problems[1] == f"{KEY} line 3: capture schema 2 is not 1, the version this UI reads"
    assert found.problems[2] == f"{KEY} line 4: field 'time' is not an ISO 8601 UTC time: 'yesterday'"
    broken = monitoring.parse_capture_file(KEY + ".gz", b"\x1f\x8b not really gzip")
    assert broken.records == [] and broken.problems[0].startswith(f"{KEY}.gz: not a readable gzip file")


def test_the_audit_table_is_newest_first_and_filters_by_caller_and_time() -> None:
    records = monitoring.parse_capture_file(KEY, "\n".join(json.dumps(r) for r in [
        capture(1), capture(2, caller="jwt:bob"), capture(3, caller=None),
        capture(4, outputs=[], status=422, error="row 0: field 'age' expected a number"),
        capture(5, outputs=["<=50K", ">50K", ">50K", "<=50K", ">50K"], inputs=[{}] * 5),
    ]).encode()).records
    audit = monitoring.audit_frame(records)
    assert list(audit.columns) == monitoring.AUDIT_COLUMNS
    assert list(audit["request id"]) == ["r5", "r4", "r3", "r2", "r1"]
    assert audit.loc[0, "rows"] == 5 and audit.loc[0, "outputs"] == "<=50K, >50K, >50K … (+2)"
    assert audit.loc[1, "rows"] == 1 and audit.loc[1, "error"].startswith("row 0")  # rows from its inputs
    assert audit.loc[2, "caller"] == monitoring.NO_CALLER
    alice = monitoring.filter_audit(audit, ["arn:aws:iam::123456789012:user/alice"])
    assert list(alice["request id"]) == ["r5", "r4", "r1"]
    window = monitoring.filter_audit(audit, [], datetime(2026, 11, 26, 12, tzinfo=UTC),
                                     datetime(2026, 11, 26, 14, tzinfo=UTC))
    assert list(window["request id"]) == ["r4", "r3", "r2"]


def test_hashed_share_counts_requests_captured_without_inputs() -> None:
    records = [capture(1), capture(2, mode="hashed", inputs=None, input_hashes=["ab" * 32])]
    assert monitoring.hashed_share(records) == 0.5 and monitoring.hashed_share([]) == 0.0


def test_histograms_label_bins_from_edges_and_categories() -> None:
    numeric = {"name": "age", "reference": {"edges": [17, 30, 45.5, 90], "frequencies": [0.3, 0.4, 0.3]},
               "current": {"frequencies": [0.0, 0.1, 0.2, 0.5, 0.2]}}
    frame = monitoring.histogram_frame(numeric)
    assert list(frame[frame["of"] == "reference"]["bin"]) == ["< 17", "17–30", "30–45.5"]
    assert list(frame[frame["of"] == "current"]["bin"]) == ["< 17", "17–30", "30–45.5", "45.5–90", "> 90"]
    same = monitoring.bin_labels([0, 1, 2], 2)
    assert same == ["0–1", "1–2"]
    categorical = {"reference": {"categories": ["Private", "__other__"], "frequencies": [0.8, 0.2]},
                   "current": {"frequencies": [0.5, 0.3, 0.2]}}
    shares = monitoring.histogram_frame(categorical)
    assert list(shares[shares["of"] == "current"]["bin"]) == ["Private", "__other__", "(unseen)"]
    assert shares["share"].sum() == pytest.approx(2.0)


def test_features_are_ordered_drifted_first_then_by_psi() -> None:
    report = {"features": [{"name": "a", "psi": 0.05}, {"name": "b", "psi": 0.31, "drifted": True},
                           {"name": "c", "psi": None}, {"name": "d", "psi": 0.12}]}
    assert [f["name"] for f in monitoring.features_worst_first(report)] == ["b", "d", "a", "c"]


def test_a_report_of_another_schema_or_shape_is_refused_naming_key_and_field() -> None:
    key = "monitoring/adult/latest.json"
    with pytest.raises(monitoring.UnreadableReport, match=r"latest\.json: field 'schema' is 2"):
        monitoring.check_report(key, {"schema": 2})
    with pytest.raises(monitoring.UnreadableReport, match=r"latest\.json: field 'features' should be a JSON array"):
        monitoring.check_report(key, {"schema": 1, "features": {"age": 1}})
    with pytest.raises(monitoring.UnreadableReport, match="expected a JSON object, got list"):
        monitoring.check_report(key, [])


def test_performance_per_version_puts_estimated_next_to_true() -> None:
    report = {"champion_version": 3, "performance": {"metric": "accuracy", "reference": 0.87, "by_version": {
        "3": {"estimated": 0.86, "true": 0.85, "labelled_rows": 200}, "2": {"estimated": 0.84, "true": None}}}}
    frame = monitoring.performance_frame(report)
    assert list(zip(frame["version"], frame["of"], frame["value"], strict=True)) == [
        ("3", "reference (test split)", 0.87), ("2", "estimated (no labels)", 0.84),
        ("3", "estimated (no labels)", 0.86), ("3", "true (feedback)", 0.85)]


def test_partition_days_come_from_dt_prefixes_only() -> None:
    assert str(monitoring.day_of_partition("capture/adult/dt=2026-11-26/")) == "2026-11-26"
    assert monitoring.day_of_partition("capture/adult/dt=soon/") is None
    assert monitoring.day_of_partition("capture/adult/other/") is None
