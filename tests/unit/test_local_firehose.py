"""The offline Firehose (stepml.local.firehose) on its own: filter patterns as CloudWatch Logs reads
them, and a delivery stream configured as in template.yaml writing the keys AWS would."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from stepml.local.firehose import FilterPattern, FirehoseEmulationError, LocalDeliveryStream
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("pattern", "message", "matches"),
    [
        ("{ $.stepml_capture >= 1 }", '{"stepml_capture": 1, "model": "a"}', True),
        ("{ $.stepml_capture >= 1 }", '{"stepml_capture": "1"}', False),
        ("{ $.stepml_capture >= 1 }", '{"level": "INFO", "message": "stepml_capture"}', False),
        ("{ $.stepml_capture >= 1 }", "START RequestId: 1 Version: $LATEST", False),
        ('{ $.model = "adu*" && $.status != 200 }', '{"model": "adult", "status": 422}', True),
        ('{ $.model = "adu*" && $.status != 200 }', '{"model": "adult", "status": 200}', False),
        ("ERROR \"disk full\"", "ERROR: the disk full at 3am", True),
        ("ERROR \"disk full\"", "ERROR: disk is full", False),
        ("", "anything", True),
    ],
)
def test_filter_patterns_match_as_cloudwatch_logs_does(pattern: str, message: str, matches: bool) -> None:
    assert FilterPattern.parse(pattern).matches(message) is matches


@pytest.mark.parametrize("pattern", ["{ ($.a = 1) || $.b = 2 }", "?ERROR ?WARN", "[ip, user]", "{ $.a > \"x\" }"])
def test_patterns_this_emulation_cannot_read_are_refused(pattern: str) -> None:
    with pytest.raises(FirehoseEmulationError, match="filter pattern"):
        FilterPattern.parse(pattern)


def _template_stream(written: list[tuple[str, str, bytes]], **changes: Any) -> LocalDeliveryStream:
    """The template's CaptureDeliveryStream, its references filled in by hand."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=Loader)
    properties = template["Resources"]["CaptureDeliveryStream"]["Properties"]
    destination = {**properties["ExtendedS3DestinationConfiguration"], "BucketARN": "arn:aws:s3:::data",
                   "RoleARN": "arn:aws:iam::123456789012:role/delivery", **changes}
    return LocalDeliveryStream.from_properties(
        "CaptureDeliveryStream", "stack-capture", "arn:stream", {"ExtendedS3DestinationConfiguration": destination},
        lambda bucket, key, body: written.append((bucket, key, body)))


def test_the_template_stream_writes_one_gzip_object_per_model_and_day() -> None:
    written: list[tuple[str, str, bytes]] = []
    stream = _template_stream(written)
    lines = [json.dumps({"stepml_capture": 1, "model": model, "time": when})
             for model, when in (("adult", "2026-11-26T23:59:59.999Z"), ("adult", "2026-11-27T00:00:00.001Z"),
                                 ("houses", "2026-11-26T10:00:00.000Z"))]
    keys = stream.deliver([*lines, '{"stepml_capture": 1, "time": "2026-11-26T00:00:00.000Z"}'],
                          arrival=datetime(2026, 11, 27, 0, 0, 5, tzinfo=UTC))
    prefixes = sorted(key.rsplit("/", 1)[0] for key in keys)
    assert prefixes == ["capture-errors/partitioning-failed/dt=2026-11-27", "capture/adult/dt=2026-11-26",
                        "capture/adult/dt=2026-11-27", "capture/houses/dt=2026-11-26"]
    assert all(key.rsplit("/", 1)[1].startswith("stack-capture-1-2026-11-27-00-00-05-") and key.endswith(".gz")
               for key in keys)
    bodies = {key: gzip.decompress(body) for _, key, body in written}
    houses = next(body for key, body in bodies.items() if "/houses/" in key)
    assert houses == (lines[2] + "\n").encode()


def test_a_stream_the_emulation_does_not_run_as_aws_is_refused() -> None:
    with pytest.raises(FirehoseEmulationError, match="ErrorOutputPrefix"):
        _template_stream([], ErrorOutputPrefix="")
    with pytest.raises(FirehoseEmulationError, match="CloudWatchLogProcessing"):
        _template_stream([], ProcessingConfiguration={"Enabled": True, "Processors": [
            {"Type": "MetadataExtraction", "Parameters": []}]})
