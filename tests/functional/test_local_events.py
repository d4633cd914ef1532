"""EventBridge → Step Functions offline: the event a state machine receives, and its execution name."""

from __future__ import annotations

import datetime as dt
import re

from moto.events.models import EventPattern

from stepml.local.events import execution_name, is_state_machine_arn, normalise_s3_event


def moto_s3_event(key: str = "raw/adult/adult.csv", detail_type: str = "Object Created") -> dict:
    """An event as moto's S3 hands it to EventBridge (moto 5.2)."""
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": "123456789012",
        "time": 1763800000.123,
        "region": "us-east-1",
        "resources": ["arn:aws:s3:::data"],
        "detail": {
            "version": "0",
            "bucket": {"name": "data"},
            "object": {
                "key": key,
                "size": 12,
                "eTag": "abc123",
                "version-id": "v1",
                "sequencer": "617f08299329d189",
            },
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "source-ip-address": "1.2.3.4",
            "reason": "ObjectCreated",
        },
    }


PATTERN = EventPattern.load(
    '{"source": ["aws.s3"], "detail-type": ["Object Created"],'
    ' "detail": {"bucket": {"name": ["data"]}, "object": {"key": [{"wildcard": "raw/*.csv"}]}}}'
)


def test_moto_s3_event_is_normalised_to_aws_shape() -> None:
    original = moto_s3_event()

    event = normalise_s3_event(original)

    obj = event["detail"]["object"]
    assert obj == {
        "key": "raw/adult/adult.csv",
        "size": 12,
        "etag": "abc123",
        "version-id": "v1",
        "sequencer": obj["sequencer"],
    }
    assert re.fullmatch(r"[0-9A-F]{18}", obj["sequencer"])
    assert event["time"] == "2025-11-22T08:26:40Z"
    assert event["detail"]["reason"] == "PutObject"
    assert event["id"] != original["id"] and normalise_s3_event(original)["id"] != event["id"]
    assert original["detail"]["object"]["eTag"] == "abc123"  # the input is left alone


def test_unversioned_objects_have_no_version_id_as_on_aws() -> None:
    original = moto_s3_event()
    original["detail"]["object"]["version-id"] = None

    assert "version-id" not in normalise_s3_event(original)["detail"]["object"]


def test_other_events_pass_unchanged() -> None:
    custom = {"source": "my.app", "detail-type": "Thing", "detail": {"x": 1}, "id": "i"}
    assert normalise_s3_event(custom) == custom


def test_the_rule_pattern_matches_uploads_only() -> None:
    assert PATTERN.matches_event(normalise_s3_event(moto_s3_event()))
    assert not PATTERN.matches_event(
        normalise_s3_event(moto_s3_event(detail_type="Object Tags Added"))
    )
    assert not PATTERN.matches_event(normalise_s3_event(moto_s3_event(key="raw/adult/readme.txt")))
    assert not PATTERN.matches_event(normalise_s3_event(moto_s3_event(key="models/adult/x.csv")))


def test_execution_names_are_valid_unique_and_readable() -> None:
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    event = normalise_s3_event(moto_s3_event())

    names = {execution_name(event, now) for _ in range(50)}

    assert len(names) == 50
    for name in names:
        assert re.fullmatch(r"adult-20260102T030405Z-[0-9a-f]{8}", name)


def test_execution_names_fit_step_functions_limits_for_any_key() -> None:
    odd = normalise_s3_event(moto_s3_event(key="raw/" + "ä b[c]*?" * 20 + "/f.csv"))
    flat = normalise_s3_event(moto_s3_event(key="top.csv"))

    for name in (
        execution_name(odd),
        execution_name(flat),
        execution_name({"detail-type": "Scheduled Event"}),
    ):
        assert len(name) <= 80 and re.fullmatch(r"[A-Za-z0-9_-]+", name), name
    assert execution_name(flat).startswith("top-")


def test_state_machine_targets_are_recognised() -> None:
    assert is_state_machine_arn(
        "arn:aws:states:us-east-1:123456789012:stateMachine:stepml-Pipeline-X"
    )
    assert not is_state_machine_arn("arn:aws:sqs:us-east-1:123456789012:queue")
    assert not is_state_machine_arn("arn:aws:states:us-east-1:123456789012:execution:m:e")
