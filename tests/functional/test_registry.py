"""The registry under moto (and on a folder): versions appear whole, numbers and alias updates never
collide, a retried run registers nothing new, S3's 409 is retried, and alias history stays bounded."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

import boto3
import pytest

from stepml import keys, registry
from stepml.deliveries import claim_delivery, delivery_key
from stepml.errors import ConfigError, NotFoundError
from stepml.registry import ARCHIVE_BATCH, HISTORY_KEPT, ModelRegistry
from stepml.settings import Settings
from stepml.storage import DirectoryStore, PreconditionFailed, S3Store
from tests.conftest import fresh_mock_aws

BUCKET = "registry-test-bucket"


@pytest.fixture
def store():
    # moto checks S3 conditions and writes without a lock; the offline stack makes that atomic
    # (as on AWS), and so do these tests, which exercise the registry under real concurrency.
    from stepml.local import s3_conditions

    s3_conditions.install()
    with fresh_mock_aws():
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


# -- a run registers one version -------------------------------------------------------------


def test_a_retried_run_gets_its_version_back_and_registers_no_other(store: S3Store) -> None:
    models = ModelRegistry(store)
    first = models.register_version("demo", "run-1", {"model.joblib": b"m"}, {"task": "regression"})
    again = models.register_version("demo", "run-1", {"model.joblib": b"m"}, {"task": "regression"})
    assert again == first and [m["version"] for m in models.list_versions("demo")] == [1]
    assert models.register_version("demo", "run-2", {"model.joblib": b"m"}, {})["version"] == 2


def test_a_run_that_crashed_before_meta_json_finishes_the_version_it_claimed(store: S3Store) -> None:
    models = ModelRegistry(store)
    # Given run-1 claimed version 1 and recorded it, then died before writing meta.json
    number = models.claim_version("demo", "run-1")
    store.put_json(keys.run_registration("demo", "run-1"), {"run_id": "run-1", "version": number})
    assert models.list_versions("demo") == []
    # When run-1 is retried, Then it completes that same version, and nothing else appears
    meta = models.register_version("demo", "run-1", {"model.joblib": b"m"}, {"task": "regression"})
    assert meta["version"] == number == 1
    assert [m["version"] for m in models.list_versions("demo")] == [1]


def test_concurrent_retries_of_one_run_leave_one_version(store: S3Store) -> None:
    models = ModelRegistry(store)
    with ThreadPoolExecutor(max_workers=4) as pool:
        metas = list(pool.map(lambda _: models.register_version("demo", "run-1", {"model.joblib": b"m"}, {}),
                              range(4)))
    assert {m["version"] for m in metas} == {metas[0]["version"]}
    assert len(models.list_versions("demo")) == 1


# -- S3's 409 (a concurrent conditional write in flight) and a vanished alias ----------------


class FlakyClient:
    """The real (moto) S3 client, except that ``put_object`` first does ``before_put(kwargs)``."""

    def __init__(self, client: Any, before_put: Any) -> None:
        self._client, self.before_put = client, before_put

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_object(self, **kwargs: Any) -> Any:
        self.before_put(self._client, kwargs)
        return self._client.put_object(**kwargs)


def conflict_once(prefix: str) -> Any:
    """Raise S3's 409 ConditionalRequestConflict on the first conditional put under ``prefix``."""
    from botocore.exceptions import ClientError

    raised: list[str] = []

    def before_put(_client: Any, kwargs: dict[str, Any]) -> None:
        if kwargs["Key"].startswith(prefix) and "IfNoneMatch" in kwargs and not raised:
            raised.append(kwargs["Key"])
            error = {"Code": "ConditionalRequestConflict", "Message": "A conflicting conditional operation is "
                     "currently in progress against this resource. Please try again."}
            raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 409}}, "PutObject")

    before_put.raised = raised  # type: ignore[attr-defined]
    return before_put


def test_a_409_on_a_delivery_claim_is_retried_not_taken_for_a_duplicate(store: S3Store) -> None:
    source = {"bucket": BUCKET, "key": "raw/demo/a.csv", "version_id": "v1", "etag": "e1"}
    before_put = conflict_once("deliveries/")
    store._client = FlakyClient(store.client, before_put)
    # When the first claim meets a 409, Then the run still gets the delivery (None: not a duplicate)
    assert claim_delivery(store, "demo", source, "run-1") is None
    assert before_put.raised == [delivery_key("demo", source)]
    assert delivery_key("demo", source).startswith("deliveries/demo/")
    assert store.get_json(delivery_key("demo", source))["run_id"] == "run-1"
    # And a later delivery of that object version by another run is a duplicate of run-1
    assert claim_delivery(store, "demo", source, "run-2")["run_id"] == "run-1"


def test_a_409_on_a_version_claim_is_retried_on_the_same_number(store: S3Store) -> None:
    store._client = FlakyClient(store.client, conflict_once("models/demo/version-1/"))
    assert register(store, "run-1") == 1


def test_an_alias_deleted_during_an_update_is_created_again(store: S3Store) -> None:
    for i in range(2):
        register(store, f"run-{i}")
    models = ModelRegistry(store)
    models.set_alias("demo", "champion", 1, "first")

    def delete_first(client: Any, kwargs: dict[str, Any]) -> None:
        if "IfMatch" in kwargs and not deleted:
            deleted.append(kwargs["Key"])
            client.delete_object(Bucket=BUCKET, Key=kwargs["Key"])

    deleted: list[str] = []
    store._client = FlakyClient(store.client, delete_first)
    # When the alias is deleted between the read and the If-Match write (S3 answers 404)
    record = models.set_alias("demo", "champion", 2, "second")
    # Then the update is retried as a create: the alias names v2, with the history it now has
    assert deleted == ["models/demo/aliases/champion.json"]
    assert (record["version"], record["previous_version"]) == (2, None)
    assert models.alias_version("demo", "champion") == 2


def test_a_rollback_of_an_alias_deleted_meanwhile_is_a_clear_error(store: S3Store) -> None:
    for i in range(2):
        register(store, f"run-{i}")
    models = ModelRegistry(store)
    models.set_alias("demo", "champion", 1, "first")
    models.set_alias("demo", "champion", 2, "second")
    store._client = FlakyClient(store.client, lambda client, kwargs: client.delete_object(Bucket=BUCKET, Key=kwargs["Key"]))
    with pytest.raises(ConfigError, match="no earlier champion to roll back to"):
        models.rollback("demo", "undo")


# -- bounded alias history -------------------------------------------------------------------


def test_a_hundred_promotions_keep_the_alias_object_small_and_the_whole_history(store: S3Store) -> None:
    models = ModelRegistry(store)
    for i in range(3):
        register(store, f"run-{i}")
    sizes = []
    # When the champion changes 100 times (with reasons as long as allowed)
    for n in range(100):
        models.set_alias("demo", "champion", 1 + n % 3, f"change {n} " + "x" * 900, action="promote")
        sizes.append(store.head(keys.alias("demo", "champion")).size)
    # Then the object every inference container re-reads stays bounded: at most HISTORY_KEPT entries
    record = models.alias_record("demo", "champion")
    assert len(record["history"]) <= HISTORY_KEPT and record["archived"] == 100 - len(record["history"])
    # (~1.1 KB an entry here; past the first HISTORY_KEPT changes only the rollback stack grows, by
    # one number a change, up to ROLLBACK_DEPTH)
    assert max(sizes) < HISTORY_KEPT * 1400 and max(sizes) < 1.1 * max(sizes[:HISTORY_KEPT])
    # And the full history is kept, newest first, in order, across the archived batches
    whole = models.history("demo", "champion")
    assert whole["total"] == 100 and whole["next_before"] is None
    assert [e["seq"] for e in whole["entries"]] == list(range(100, 0, -1))
    assert [e["reason"].split(" x")[0] for e in whole["entries"][:2]] == ["change 99", "change 98"]
    assert all(later["from"] == earlier["to"] for later, earlier in pairwise(whole["entries"]))
    # And pages of it walk back to the first change without gaps or repeats
    seen, before = [], None
    while True:
        page = models.history("demo", "champion", limit=30, before=before)
        seen += [e["seq"] for e in page["entries"]]
        if page["next_before"] is None:
            break
        before = page["next_before"]
    assert seen == list(range(100, 0, -1))
    # And a rollback still goes to the previous different champion
    assert models.rollback("demo", "undo")["version"] == 1 + 98 % 3


def test_a_history_written_before_it_was_bounded_is_numbered_and_archived_on_the_next_change(store: S3Store) -> None:
    for i in range(2):
        register(store, f"run-{i}")
    legacy = [{"from": None if n == 0 else 1 + (n - 1) % 2, "to": 1 + n % 2, "action": "promote", "reason": f"old {n}",
               "actor": "x", "time": "2026-01-01T00:00:00+00:00"} for n in range(45)]
    store.put_json(keys.alias("demo", "champion"), {"alias": "champion", "version": legacy[-1]["to"], "history": legacy})
    models = ModelRegistry(store)
    assert registry.rollback_target(models.alias_record("demo", "champion")) == legacy[-2]["to"]
    models.set_alias("demo", "champion", 2, "new")
    record = models.alias_record("demo", "champion")
    assert len(record["history"]) <= HISTORY_KEPT and record["archived"] % ARCHIVE_BATCH == 0
    whole = models.history("demo", "champion")["entries"]
    assert [e["reason"] for e in reversed(whole)] == [f"old {n}" for n in range(45)] + ["new"]


# -- the same registry on a folder -----------------------------------------------------------


def test_the_registry_on_a_directory_store(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    models = ModelRegistry(store)
    with ThreadPoolExecutor(max_workers=4) as pool:
        metas = list(pool.map(lambda i: models.register_version("demo", f"run-{i}", {"model.onnx": b"m"}, {}), range(6)))
    assert sorted(m["version"] for m in metas) == list(range(1, 7))
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda v: models.set_alias("demo", "champion", v, "race"), range(1, 7)))
    assert len(models.history("demo")["entries"]) == 6
    assert models.list_models() == ["demo"]
    assert models.aliases_of("demo", models.resolve_alias("demo")) == ["champion"]
    assert json.loads((tmp_path / "models/demo/version-1/meta.json").read_text())["version"] == 1
    # Conditional writes behave as S3's: create-only, and replace-only-that-content
    etag = store.put_json("k.json", {"a": 1}, if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put_json("k.json", {"a": 2}, if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put_json("k.json", {"a": 2}, if_match='"not-the-etag"')
    store.put_json("k.json", {"a": 3}, if_match=f'"{etag}"')
    assert store.get_json("k.json") == {"a": 3}
    store.delete("k.json")
    with pytest.raises(PreconditionFailed):
        store.put_json("k.json", {"a": 4}, if_match=f'"{etag}"')


def test_concurrent_promotions_across_archive_batches_lose_no_entry(tmp_path: Path) -> None:
    # (on a folder: the same conditional writes as S3's, tested above, without moto's cost per call)
    models = ModelRegistry(DirectoryStore(tmp_path))
    for i in range(3):
        models.register_version("demo", f"run-{i}", {"model.onnx": b"m"}, {})
    # When 32 changes race from 4 threads (the alias object overflows and archives twice)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda n: models.set_alias("demo", "champion", 1 + n % 3, f"race {n}"), range(32)))
    # Then the full history holds each change once, numbered 1..32, each starting where the last ended
    entries = list(reversed(models.history("demo", "champion")["entries"]))
    assert [e["seq"] for e in entries] == list(range(1, 33))
    assert sorted(e["reason"] for e in entries) == sorted(f"race {n}" for n in range(32))
    assert all(later["from"] == earlier["to"] for earlier, later in pairwise(entries))
    assert len(models.alias_record("demo", "champion")["history"]) <= HISTORY_KEPT
