"""The S3 registry under moto: versions appear whole, numbers and alias updates never collide."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from moto import mock_aws

from stepml.deliveries import claim_delivery
from stepml.errors import ConfigError, NotFoundError
from stepml.registry import ModelRegistry
from stepml.settings import Settings
from stepml.storage import S3Store

BUCKET = "registry-test-bucket"


@pytest.fixture
def store():
    # moto checks S3 conditions and writes without a lock; the offline stack makes that atomic
    # (as on AWS), and so do these tests, which exercise the registry under real concurrency.
    from stepml.local import s3_conditions

    s3_conditions.install()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        # Versioned, as the data bucket is (template.yaml). Unversioned, moto closes an object's
        # buffer when another thread overwrites it, and a concurrent read failed (ValueError).
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield S3Store(Settings(bucket=BUCKET))


def register(store: S3Store, run: str, payload: bytes = b"model") -> int:
    meta = ModelRegistry(store).register_version("demo", run, {"model.joblib": payload}, {"task": "regression"})
    return meta["version"]


def test_concurrent_registrations_get_distinct_versions(store: S3Store) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = list(pool.map(lambda i: register(store, f"run-{i}"), range(10)))
    assert sorted(versions) == list(range(1, 11))
    assert [m["version"] for m in ModelRegistry(store).list_versions("demo")] == list(range(1, 11))


def test_a_version_without_meta_is_invisible(store: S3Store) -> None:
    register(store, "run-1")
    # A crash after claiming version 2 and writing its artifact, before meta.json:
    number = ModelRegistry(store).claim_version("demo", "run-2")
    store.put_bytes(f"models/demo/version-{number}/model.joblib", b"half")
    assert [m["version"] for m in ModelRegistry(store).list_versions("demo")] == [1]
    with pytest.raises(NotFoundError):
        ModelRegistry(store).get_version("demo", number)
    assert register(store, "run-3") == number + 1


def test_aliases_follow_promotions_and_record_the_previous_version(store: S3Store) -> None:
    register(store, "run-1")
    register(store, "run-2")
    ModelRegistry(store).set_alias("demo", "champion", 1, "first")
    record = ModelRegistry(store).set_alias("demo", "champion", 2, "better")
    assert record["previous_version"] == 1
    assert ModelRegistry(store).get_version_by_alias("demo")["version"] == 2
    assert ModelRegistry(store).list_versions("demo")[1]["aliases"] == ["champion"]
    with pytest.raises(NotFoundError, match="no version 7"):
        ModelRegistry(store).set_alias("demo", "champion", 7, "typo")


def test_concurrent_alias_updates_are_not_lost(store: S3Store) -> None:
    for i in range(6):
        register(store, f"run-{i}")
    with ThreadPoolExecutor(max_workers=6) as pool:
        records = list(pool.map(lambda v: ModelRegistry(store).set_alias("demo", "champion", v, "race"), range(1, 7)))
    # Each update saw the one before it: following previous_version links visits every version.
    previous = {r["version"]: r["previous_version"] for r in records}
    final = ModelRegistry(store).alias_version("demo", "champion")
    chain = []
    while final is not None:
        chain.append(final)
        final = previous.get(final)
    assert sorted(chain) == list(range(1, 7))


def test_a_tampered_artifact_is_refused(store: S3Store) -> None:
    register(store, "run-1", b"genuine")
    store.put_bytes("models/demo/version-1/model.joblib", b"tampered")
    meta = ModelRegistry(store).get_version("demo", 1)
    with pytest.raises(NotFoundError, match="SHA-256"):
        ModelRegistry(store).load_artifact(meta, "model.joblib")


def test_promote_rollback_and_history(store: S3Store) -> None:
    good = {"evaluation": {"primary_metric": "accuracy", "higher_is_better": True,
                           "metrics": {"accuracy": 0.85}, "baseline": {"accuracy": 0.75}}}
    better = {"evaluation": {**good["evaluation"], "metrics": {"accuracy": 0.87}}}
    worse = {"evaluation": {**good["evaluation"], "metrics": {"accuracy": 0.80}}}
    for i, meta in enumerate((good, better, worse), start=1):
        ModelRegistry(store).register_version("demo", f"run-{i}", {"model.joblib": b"m"}, meta)

    assert ModelRegistry(store).promote_if_better("demo", 1, {}, "run-1")["promoted"]
    assert ModelRegistry(store).promote_if_better("demo", 2, {}, "run-2")["promoted"]
    refused = ModelRegistry(store).promote_if_better("demo", 3, {}, "run-3")
    assert not refused["promoted"] and "worse than champion v2" in refused["reason"]
    assert ModelRegistry(store).alias_version("demo", "champion") == 2

    rolled = ModelRegistry(store).rollback("demo", "v2 misbehaves in production", actor="alice")
    assert rolled["version"] == 1 and rolled["previous_version"] == 2
    history = ModelRegistry(store).alias_record("demo", "champion")["history"]
    assert [(h["from"], h["to"], h["action"]) for h in history] == [
        (None, 1, "promote"), (1, 2, "promote"), (2, 1, "rollback")]
    assert history[-1]["actor"] == "alice" and history[-1]["reason"] == "v2 misbehaves in production"
    with pytest.raises(ConfigError, match="no earlier champion"):
        ModelRegistry(store).rollback("demo", "again")


def test_delivery_is_claimed_once(store: S3Store) -> None:
    source = {"bucket": BUCKET, "key": "raw/demo/a.csv", "version_id": "v1", "etag": "e1"}
    assert claim_delivery(store, "demo", source, "run-1") is None
    assert claim_delivery(store, "demo", source, "run-1") is None  # a retry of run-1
    assert claim_delivery(store, "demo", source, "run-2")["run_id"] == "run-1"
    assert claim_delivery(store, "demo", {**source, "version_id": "v2"}, "run-3") is None
