"""The pieces of `stepml smoke` that need no stack: its dataset, its names, its reasons."""

from __future__ import annotations

import urllib.error
from datetime import UTC, datetime

from stepml import keys
from stepml.errors import ConfigError
from stepml.smoke import (
    PROBES,
    SmokeReport,
    StepResult,
    readable_reason,
    smoke_csv,
    smoke_dataset_name,
)


def test_the_smoke_dataset_is_small_deterministic_and_learnable() -> None:
    assert smoke_csv() == smoke_csv()
    lines = smoke_csv().decode().splitlines()
    assert lines[0] == "amount,colour,noise,label" and len(lines) == 301
    labels = [line.rsplit(",", 1)[1] for line in lines[1:]]
    assert set(labels) == {"yes", "no"} and min(labels.count("yes"), labels.count("no")) > 60
    assert [label for _, label in PROBES] == ["yes", "no"]


def test_smoke_dataset_names_are_unique_valid_slugs() -> None:
    moment = datetime(2026, 11, 26, 9, 8, 16, tzinfo=UTC)
    name = smoke_dataset_name(moment)
    assert name.startswith("smoke-20261126-090816-") and keys.check_dataset_name(name) == name
    assert smoke_dataset_name(moment) != smoke_dataset_name(moment)


def test_failures_read_as_one_sentence() -> None:
    refused = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    assert readable_reason(refused) == "cannot reach the HTTP API: [Errno 111] Connection refused"
    assert readable_reason(ConfigError("cannot find the stack 'x'")) == "cannot find the stack 'x'"
    assert readable_reason(TimeoutError("no finished run after 5 s")) == "no finished run after 5 s"
    assert readable_reason(ValueError("odd")) == "ValueError: odd"


def test_a_report_passes_only_when_every_step_did() -> None:
    report = SmokeReport("stepml", "smoke-x")
    assert not report.passed
    report.steps += [StepResult("find the stack", True, 0.25, "ok"), StepResult("clean up", True, 0.5, "ok")]
    assert report.passed and report.seconds == 0.75
    report.steps.insert(1, StepResult("predict through the HTTP API", False, 1.0, "HTTP 500"))
    assert not report.passed and [s.name for s in report.failures] == ["predict through the HTTP API"]
    assert report.to_dict()["steps"][1] == {"name": "predict through the HTTP API", "passed": False,
                                            "seconds": 1.0, "detail": "HTTP 500"}
