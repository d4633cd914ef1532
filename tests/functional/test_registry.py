"""The S3 registry under moto: versions appear whole, numbers and alias updates never collide."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from moto import mock_aws

from stepml import registry
from stepml.errors import NotFoundError
from stepml.settings import Settings
from stepml.storage import S3Store

BUCKET = "registry-test-bucket"


@pytest.fixture
def store():
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield S3Store(Settings(bucket=BUCKET))


def register(store: S3Store, run: str, payload: bytes = b"model") -> int:
    meta = registry.register_version(store, "demo", run, {"model.joblib": payload}, {"task": "regression"})
    return meta["version"]


def test_concurrent_registrations_get_distinct_versions(store: S3Store) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = list(pool.map(lambda i: register(store, f"run-{i}"), range(10)))
    assert sorted(versions) == list(range(1, 11))
    assert [m["version"] for m in registry.list_versions(store, "demo")] == list(range(1, 11))


def test_a_version_without_meta_is_invisible(store: S3Store) -> None:
    register(store, "run-1")
    # A crash after claiming version 2 and writing its artifact, before meta.json:
    number = registry.claim_version(store, "demo", "run-2")
    store.put_bytes(f"models/demo/version-{number}/model.joblib", b"half")
    assert [m["version"] for m in registry.list_versions(store, "demo")] == [1]
    with pytest.raises(NotFoundError):
        registry.get_version(store, "demo", number)
    assert register(store, "run-3") == number + 1


def test_aliases_follow_promotions_and_record_the_previous_version(store: S3Store) -> None:
    register(store, "run-1")
    register(store, "run-2")
    registry.set_alias(store, "demo", "champion", 1, "first")
    record = registry.set_alias(store, "demo", "champion", 2, "better")
    assert record["previous_version"] == 1
    assert registry.resolve(store, "demo")["version"] == 2
    assert registry.list_versions(store, "demo")[1]["aliases"] == ["champion"]
    with pytest.raises(NotFoundError, match="no version 7"):
        registry.set_alias(store, "demo", "champion", 7, "typo")


def test_concurrent_alias_updates_are_not_lost(store: S3Store) -> None:
    for i in range(6):
        register(store, f"run-{i}")
    with ThreadPoolExecutor(max_workers=6) as pool:
        records = list(pool.map(lambda v: registry.set_alias(store, "demo", "champion", v, "race"), range(1, 7)))
    # Each update saw the one before it: following previous_version links visits every version.
    previous = {r["version"]: r["previous_version"] for r in records}
    final = registry.get_alias(store, "demo", "champion")
    chain = []
    while final is not None:
        chain.append(final)
        final = previous.get(final)
    assert sorted(chain) == list(range(1, 7))


def test_a_tampered_artifact_is_refused(store: S3Store) -> None:
    register(store, "run-1", b"genuine")
    store.put_bytes("models/demo/version-1/model.joblib", b"tampered")
    meta = registry.get_version(store, "demo", 1)
    with pytest.raises(NotFoundError, match="SHA-256"):
        registry.load_artifact(store, meta, "model.joblib")
