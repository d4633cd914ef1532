"""Seeding a fresh stack for `stepml local invoke`: what is written, and how the event is pointed at it.

A fake stack records S3 calls and stage invocations; the real stack is in
tests/e2e/test_local_invoke.py.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from stepml.local.seed import PIPELINE, SAMPLE_ROWS, SeedError, Seeding, seed_for_event
from tests.conftest import ROOT, seed_dataset

FRESH_BUCKET = "stepml-databucket-fresh1234"


def sample_event(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "events" / f"{name}.json").read_text())


@dataclass
class Invocation:
    payload: Any
    errored: bool = False


@dataclass
class FakeS3:
    """The few S3 calls seeding makes, with the bucket's EventBridge switch."""

    notifications: dict[str, Any] = field(default_factory=lambda: {"EventBridgeConfiguration": {}})
    puts: list[dict[str, Any]] = field(default_factory=list)

    def get_bucket_notification_configuration(self, Bucket: str) -> dict[str, Any]:
        return {**copy.deepcopy(self.notifications), "ResponseMetadata": {}}

    def put_bucket_notification_configuration(
        self, Bucket: str, NotificationConfiguration: dict[str, Any]
    ) -> None:
        self.notifications = NotificationConfiguration

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str) -> dict[str, Any]:
        self.puts.append({"key": Key, "body": Body, "notifications": dict(self.notifications)})
        return {"VersionId": "fresh-version", "ETag": f'"{hashlib.md5(Body).hexdigest()}"'}


@dataclass
class FakeStack:
    bucket: str = FRESH_BUCKET
    s3: FakeS3 = field(default_factory=FakeS3)
    invoked: list[tuple[str, Any]] = field(default_factory=list)
    fail: str | None = None

    def client(self, service: str) -> Any:
        assert service == "s3"
        return self.s3

    def invoke(self, function: str, event: Any) -> Invocation:
        self.invoked.append((function, event))
        if function == self.fail:
            return Invocation({"errorType": "DataError", "errorMessage": "broken"}, errored=True)
        return Invocation({**event, "stage": function, "version": 1, "promoted": True})


@pytest.fixture(autouse=True)
def adult_available() -> None:
    seed_dataset("adult")  # the sample upload is its first rows; skips loudly without it


def test_validate_gets_the_sample_upload_without_a_pipeline_run() -> None:
    stack, seeding = FakeStack(), Seeding()
    original = sample_event("validate")

    invoked_with = seed_for_event(stack, "ValidateFunction", original, seeding)

    # The sample upload, written while the bucket sent no EventBridge events, then switched back on
    (put,) = stack.s3.puts
    assert put["key"] == "raw/adult/adult.csv" and put["notifications"] == {}
    assert put["body"].count(b"\n") == SAMPLE_ROWS + 1
    assert stack.s3.notifications == {"EventBridgeConfiguration": {}}
    assert stack.invoked == []  # Validate is the first stage: nothing to run before it
    # The event now names the fresh bucket and the seeded version, and nothing else changed
    detail = invoked_with["event"]["detail"]
    assert detail["bucket"]["name"] == FRESH_BUCKET
    assert invoked_with["event"]["resources"] == [f"arn:aws:s3:::{FRESH_BUCKET}"]
    assert detail["object"]["version-id"] == "fresh-version"
    assert detail["object"]["etag"] == original["event"]["detail"]["object"]["etag"]
    assert invoked_with["run_id"] == original["run_id"]
    assert original == sample_event("validate")  # the caller's event is left alone
    assert seeding.replaced == {
        "stepml-databucket-example": FRESH_BUCKET,
        original["event"]["detail"]["object"]["version-id"]: "fresh-version",
    }


@pytest.mark.parametrize("function", PIPELINE[1:])
def test_each_stage_runs_after_the_stages_before_it_with_the_events_run(function: str) -> None:
    stack = FakeStack()
    name = function.removesuffix("Function").lower()
    event = sample_event(name)

    invoked_with = seed_for_event(stack, function, event)

    assert [f for f, _ in stack.invoked] == list(PIPELINE[: PIPELINE.index(function)])
    first = stack.invoked[0][1]
    assert first["run_id"] == "a1b2c3d4-upload-adult"
    assert first["event"]["detail"]["bucket"]["name"] == FRESH_BUCKET
    if "source" in event:
        assert invoked_with["source"]["bucket"] == FRESH_BUCKET
        assert invoked_with["source"]["version_id"] == "fresh-version"


def test_the_api_gets_a_champion_from_the_whole_pipeline() -> None:
    stack = FakeStack()

    seed_for_event(stack, "InferenceFunction", sample_event("inference"))

    assert [f for f, _ in stack.invoked] == list(PIPELINE)
    assert stack.invoked[0][1]["event"]["detail"]["object"]["key"] == "raw/adult/adult.csv"


def test_an_event_about_another_upload_is_refused_not_rewritten() -> None:
    event = sample_event("train")
    event["source"]["size"] = 123

    with pytest.raises(SeedError, match=r"size 123, but the sample .* first 2,000 rows of adult"):
        seed_for_event(FakeStack(), "TrainFunction", event)


def test_a_failing_earlier_stage_names_itself() -> None:
    with pytest.raises(SeedError, match="PreprocessFunction, which failed: DataError: broken"):
        seed_for_event(FakeStack(fail="PreprocessFunction"), "TrainFunction", sample_event("train"))


def test_a_non_default_config_in_the_event_is_written_for_validate_to_read() -> None:
    stack = FakeStack()
    event = sample_event("train")
    event["config"]["recipe"] = "seed-a"

    seed_for_event(stack, "TrainFunction", event)

    (config,) = [p for p in stack.s3.puts if p["key"] == "config/adult.yaml"]
    assert b"recipe: seed-a" in config["body"]


def test_a_dataset_stepml_cannot_seed_is_left_to_the_handler() -> None:
    stack, seeding = FakeStack(), Seeding()
    event = sample_event("validate")
    event["event"]["detail"]["object"]["key"] = "raw/shop/orders.csv"

    assert seed_for_event(stack, "ValidateFunction", event, seeding) == event
    assert stack.s3.puts == [] and stack.invoked == []
    assert seeding.skipped and "'shop' is not a seed dataset" in seeding.skipped
