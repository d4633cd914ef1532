"""The offline stack's data directory: what it keeps, how a kill mid-write leaves it, what comes back.

The mirror and the archive are driven directly against moto's in-memory S3 (no server): a restart
is a fresh moto whose empty bucket is filled from the directory. The whole stack across a real
``kill -9`` is tests/e2e/test_durable_stack.py.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import boto3
import pytest
from moto.s3.models import s3_backends

from stepml.local.persistence import (
    STOPPED_ERROR,
    BucketMirror,
    DataDir,
    DataDirError,
    ExecutionArchive,
)
from stepml.runs import run_outcome, summarize_history
from tests.conftest import fresh_mock_aws

ACCOUNT = "123456789012"
BUCKET = "stepml-databucket-test"


def _bucket(versioned: bool = True):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    if versioned:
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return s3, s3_backends[ACCOUNT]["aws"].get_bucket(BUCKET)


def _sync_all(mirror: BucketMirror, bucket) -> None:
    for key in list(bucket.keys.keys()):
        mirror.sync_key(bucket, key)


def test_every_version_and_its_metadata_come_back_after_a_restart(tmp_path: Path) -> None:
    mirror = BucketMirror(BUCKET, tmp_path)
    with fresh_mock_aws():
        s3, bucket = _bucket()
        first = s3.put_object(Bucket=BUCKET, Key="config/shop.yaml", Body=b"target: a\n",
                              ContentType="application/yaml", Metadata={"by": "me"})
        second = s3.put_object(Bucket=BUCKET, Key="config/shop.yaml", Body=b"target: b\n")
        s3.put_object(Bucket=BUCKET, Key="raw/shop/old.csv", Body=b"x\n1\n")
        deleted = s3.delete_object(Bucket=BUCKET, Key="raw/shop/old.csv")
        _sync_all(mirror, bucket)
        before = s3.list_object_versions(Bucket=BUCKET)

    with fresh_mock_aws():  # a restart: moto starts empty
        s3, bucket = _bucket()
        assert mirror.restore(bucket, ACCOUNT, "us-east-1") == 2
        after = s3.list_object_versions(Bucket=BUCKET)
        assert s3.get_object(Bucket=BUCKET, Key="config/shop.yaml")["Body"].read() == b"target: b\n"
        old = s3.get_object(Bucket=BUCKET, Key="config/shop.yaml", VersionId=first["VersionId"])
        assert old["Body"].read() == b"target: a\n"
        assert old["ContentType"] == "application/yaml" and old["Metadata"] == {"by": "me"}
        assert old["ETag"] == first["ETag"]
        latest = s3.head_object(Bucket=BUCKET, Key="config/shop.yaml")
        assert latest["VersionId"] == second["VersionId"]
        # The deleted upload stays deleted, its earlier version still readable by id.
        with pytest.raises(s3.exceptions.ClientError):
            s3.head_object(Bucket=BUCKET, Key="raw/shop/old.csv")
        assert [m["VersionId"] for m in after["DeleteMarkers"]] == [deleted["VersionId"]]

    def versions(listing):
        return sorted((v["Key"], v["VersionId"], v["ETag"], v["IsLatest"], v["Size"]) for v in listing["Versions"])

    assert versions(after) == versions(before)


def test_a_conditional_write_that_lost_changes_nothing_on_disk(tmp_path: Path) -> None:
    mirror = BucketMirror(BUCKET, tmp_path)
    with fresh_mock_aws():
        s3, bucket = _bucket()
        s3.put_object(Bucket=BUCKET, Key="models/shop/aliases/champion.json", Body=b'{"version": 1}')
        mirror.sync_key(bucket, "models/shop/aliases/champion.json")
        record = next((tmp_path / "keys").glob("*.json"))
        written = record.stat().st_mtime_ns
        with pytest.raises(s3.exceptions.ClientError):
            s3.put_object(Bucket=BUCKET, Key="models/shop/aliases/champion.json", Body=b"{}", IfNoneMatch="*")
        mirror.sync_key(bucket, "models/shop/aliases/champion.json")
        assert record.stat().st_mtime_ns == written


def test_a_kill_mid_write_leaves_the_object_whole_or_absent(tmp_path: Path) -> None:
    """A kill between writing an object's content and its record, or half-way through a file:
    the restart serves the last complete state, and the leftovers are cleared."""
    mirror = BucketMirror(BUCKET, tmp_path)
    with fresh_mock_aws():
        s3, bucket = _bucket()
        s3.put_object(Bucket=BUCKET, Key="models/shop/version-1/meta.json", Body=b'{"version": 1}')
        _sync_all(mirror, bucket)
    record = next((tmp_path / "keys").glob("*.json"))
    torn = record.with_name(f".{record.name}.123.456.tmp")
    torn.write_bytes(b'{"key": "models/shop/version-1/meta.json", "versions": [{"blo')
    orphan = tmp_path / "blobs" / ("0" * 64)
    orphan.write_bytes(b"model bytes whose record was never written")

    with fresh_mock_aws():
        s3, bucket = _bucket()
        assert mirror.restore(bucket, ACCOUNT, "us-east-1") == 1
        body = s3.get_object(Bucket=BUCKET, Key="models/shop/version-1/meta.json")["Body"].read()
        assert json.loads(body) == {"version": 1}
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == [
            "models/shop/version-1/meta.json"
        ]
    assert not torn.exists() and not orphan.exists()


def _running_record() -> dict:
    start = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    events = [
        {"timestamp": start, "type": "ExecutionStarted", "id": 1, "previousEventId": 0},
        {"timestamp": start + dt.timedelta(seconds=1), "type": "TaskStateEntered", "id": 2,
         "previousEventId": 1, "stateEnteredEventDetails": {"name": "Train model"}},
    ]
    return {
        "format": 1, "name": "shop-20260102T030405-abcd1234",
        "arn": "arn:aws:states:us-east-1:123456789012:execution:m:shop-20260102T030405-abcd1234",
        "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:m",
        "status": "RUNNING", "start_date": start.isoformat(), "stop_date": None, "input": "{}",
        "output": None, "error": None, "cause": None,
        "events": [{**e, "timestamp": e["timestamp"].isoformat()} for e in events],
    }


def test_a_run_the_stack_died_in_comes_back_aborted_where_it_stopped(tmp_path: Path) -> None:
    archive = ExecutionArchive(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "run.json").write_text(json.dumps(_running_record()))

    [restored] = archive.restore()

    assert restored.status == "ABORTED" and restored.error == STOPPED_ERROR
    assert "Upload the CSV again" in (restored.cause or "")
    events = restored.to_history_output()["events"]
    assert events[-1]["type"] == "ExecutionAborted"
    # boto3 reads the history's dates as datetimes: so does the summary.
    states = summarize_history([{**e, "timestamp": dt.datetime.fromisoformat(e["timestamp"])} for e in events])
    assert [(s["name"], s["status"]) for s in states] == [("Train model", "ABORTED")]
    outcome = run_outcome({"status": "ABORTED", "states": states})
    assert outcome["outcome"] == "aborted" and "Train model" in outcome["summary"]
    # The record on disk now says so too: a second restart reads the same.
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "ABORTED"
    assert ExecutionArchive(tmp_path).restore()[0].status == "ABORTED"


def test_a_data_dir_serves_one_stack_at_a_time(tmp_path: Path) -> None:
    first = DataDir(tmp_path / "state")
    first.acquire("stepml", "us-east-1")
    try:
        with pytest.raises(DataDirError, match="in use by another offline stack"):
            DataDir(tmp_path / "state").acquire("stepml", "us-east-1")
    finally:
        first.release()
    with pytest.raises(DataDirError, match="holds the state of stack 'stepml'"):
        DataDir(tmp_path / "state").acquire("other", "us-east-1")


def test_a_data_dir_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(DataDirError, match=r"cannot use .*file/state as the data dir: Not a directory"):
        DataDir(tmp_path / "file" / "state").acquire("stepml", "us-east-1")


def test_fresh_forgets_what_stepml_kept_and_nothing_else(tmp_path: Path) -> None:
    state = DataDir(tmp_path)
    state.acquire("stepml", "us-east-1")
    name = state.physical_name("DataBucket", lambda: "stepml-databucket-one")
    (tmp_path / "s3" / name / "keys").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("mine")
    state.release()
    assert DataDir(tmp_path).physical_name("DataBucket", lambda: "other") == "stepml-databucket-one"

    again = DataDir(tmp_path)
    again.acquire("another", "eu-west-1", fresh=True)  # --fresh also forgets whose state it was
    again.release()
    assert not (tmp_path / "s3").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert DataDir(tmp_path).physical_name("DataBucket", lambda: "stepml-databucket-two") == "stepml-databucket-two"


def test_a_second_local_up_on_a_data_dir_in_use_is_refused_in_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from stepml.cli import main

    holder = DataDir(tmp_path)
    holder.acquire("stepml", "us-east-1")
    try:
        result = CliRunner().invoke(main, ["local", "up", "--port", "0", "--api-port", "0",
                                           "--data-dir", str(tmp_path)])
    finally:
        holder.release()
    assert result.exit_code == 1
    assert f"{tmp_path} is in use by another offline stack" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_a_bucket_being_restored_answers_only_once_it_is_filled(tmp_path: Path) -> None:
    """Between the deployment that creates the bucket and the restore, a client waits: it never
    reads an empty registry, nor writes what the restore would replace."""
    import threading

    from stepml.local import persistence

    with fresh_mock_aws():
        s3, _ = _bucket()
        s3.put_object(Bucket=BUCKET, Key="models/shop/version-1/meta.json", Body=b"{}")
        persistence.install()
        persistence.hold_bucket(BUCKET)
        answers: list[int] = []
        reader = threading.Thread(target=lambda: answers.append(
            s3.list_objects_v2(Bucket=BUCKET, Prefix="models/")["KeyCount"]))
        try:
            reader.start()
            reader.join(timeout=1.0)
            assert reader.is_alive() and answers == []  # held
            s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})  # settings pass
        finally:
            persistence.release_bucket(BUCKET)
            reader.join(timeout=10)
            persistence.uninstall()
        assert answers == [1]
