"""Durable state for the offline stack: what it holds survives a restart, clean or ``kill -9``.

moto keeps everything in memory and has no persistence of its own, and replaying its request
recording would start every pipeline run again. What a user cannot lose lives in two places, and
only those are kept, under a data directory (:class:`DataDir`):

* the template's buckets (datasets, configs, run reports, the model registry): every object
  version, written through to disk by the S3 request that made it, before the client gets its
  answer (:class:`BucketMirror`);
* the state machines' executions (what ``stepml runs`` lists): a record per execution, written
  when it starts, while it runs and when it ends (:class:`ExecutionArchive`).

Everything else (IAM users and keys, functions, rules) is deployed afresh from ``template.yaml``
on every start. Names that persisted data refers to (bucket and state-machine names) are kept in
``stack.json`` and given to the deployment, as CloudFormation keeps them across stack updates.

Every file is written to a temporary name, flushed to disk and renamed over the old one, so a
kill at any moment leaves either the old file or the new one, never a torn object. An object's
content is written before the record that names it, in the order S3 acknowledged the writes: the
registry's rule (``meta.json`` last) therefore still holds on disk after a crash. An execution that
was running when the stack died comes back ``ABORTED``, with a cause saying so.

Layout::

    <data dir>/stack.json                      format, stack name, region, physical names
    <data dir>/lock                            held (flock) while a stack serves from the directory
    <data dir>/serving.json                    where it serves (endpoint, API, pid): `stepml --local` reads it
    <data dir>/s3/<bucket>/blobs/<sha256>      object contents, by content hash
    <data dir>/s3/<bucket>/keys/<sha256>.json  one record per key: its versions and their metadata
    <data dir>/executions/<machine>/<sha256>.json   one record per execution, with its history
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger("stepml_local")

FORMAT = 1
#: Overrides the default data directory of ``stepml local up``.
DATA_DIR_ENV = "STEPML_LOCAL_DATA_DIR"
#: The error and cause of an execution that was running when its stack stopped.
STOPPED_ERROR = "LocalStackStopped"
STOPPED_CAUSE = (
    "the offline stack stopped while this run was in progress (Ctrl-C, a crash or kill -9); "
    "nothing it had not finished was registered. Upload the CSV again to run it again."
)
_PROGRESS_SECONDS = 1.0
#: How long a request to a bucket still being restored waits (a restore of gigabytes takes long).
_HOLD_SECONDS = 600.0


#: Written by the stack serving from a data dir: its endpoint, HTTP API and process.
SERVING_FILE = "serving.json"


class DataDirError(RuntimeError):
    """The data directory cannot be used (in use by another stack, or not a stepml data dir)."""


def default_data_dir(stack_name: str, environ: Mapping[str, str] | None = None) -> Path:
    """Where ``stepml local up`` keeps a stack's state unless told otherwise.

    ``$STEPML_LOCAL_DATA_DIR`` if set, else the user's state directory (``~/.local/state/stepml/
    <stack>`` on Linux, ``~/Library/Application Support/stepml/<stack>`` on macOS).
    """
    import platformdirs

    configured = (os.environ if environ is None else environ).get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_state_dir("stepml")) / stack_name


def serving(path: Path) -> dict[str, Any] | None:
    """Where the stack serving from data dir ``path`` listens (``endpoint_url``, ``api_url``), or
    None when no running stack recorded it (none started, or it stopped, even by ``kill -9``)."""
    try:
        record = json.loads((Path(path).expanduser() / SERVING_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    pid = record.get("pid") if isinstance(record, dict) else None
    if not isinstance(pid, int) or not _process_alive(pid):
        return None
    return dict(record)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by another user
        return True
    return True


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a reader (or a restart after a kill) sees old or new, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _remove_temporaries(folder: Path) -> None:
    """Files a kill left half-written: never renamed into place, so never part of the state."""
    if folder.is_dir():
        for leftover in folder.rglob(".*.tmp"):
            leftover.unlink(missing_ok=True)


def _iso(value: dt.datetime | str | None) -> str | None:
    """A date as ISO 8601 text (moto's execution history already holds its dates as text)."""
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _datetime(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class DataDir:
    """One stack's data directory: its lock, its kept names, its buckets and executions."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser().resolve()
        self._lock_handle: Any = None

    @property
    def manifest_path(self) -> Path:
        return self.path / "stack.json"

    def acquire(self, stack_name: str, region: str, fresh: bool = False) -> None:
        """Lock the directory for this process, or refuse: two stacks must not share one.

        ``fresh`` empties it first (what ``stepml local up --fresh`` asks for).
        """
        import fcntl

        try:
            self.path.mkdir(parents=True, exist_ok=True)
            handle = open(self.path / "lock", "a+")  # noqa: SIM115 - held until release()
        except OSError as exc:
            raise DataDirError(
                f"cannot use {self.path} as the data dir: {exc.strerror}; give another with --data-dir"
            ) from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise DataDirError(
                f"{self.path} is in use by another offline stack (pid {holder}): stop it, or give "
                "this one another --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_handle = handle
        try:
            if fresh:
                self.wipe()
            manifest = self.manifest()
            if manifest and (manifest.get("stack"), manifest.get("region")) != (stack_name, region):
                raise DataDirError(
                    f"{self.path} holds the state of stack {manifest.get('stack')!r} in "
                    f"{manifest.get('region')}, not {stack_name!r} in {region}: give each stack its "
                    "own --data-dir (or start it with --fresh to empty this one)"
                )
            if not manifest:
                self._write_manifest(
                    {"format": FORMAT, "stack": stack_name, "region": region, "names": {}}
                )
        except BaseException:
            self.release()
            raise

    def record_serving(self, endpoint_url: str, api_url: str) -> None:
        """Say where the stack holding this directory serves (read back by :func:`serving`)."""
        record = {"endpoint_url": endpoint_url, "api_url": api_url, "pid": os.getpid()}
        _write_atomically(self.path / SERVING_FILE, json.dumps(record, indent=2).encode())

    def release(self) -> None:
        if self._lock_handle is not None:
            (self.path / SERVING_FILE).unlink(missing_ok=True)  # ours: the lock is still held
            self._lock_handle.close()  # closing the file drops the flock
            self._lock_handle = None

    def wipe(self) -> None:
        """Forget everything kept here (``stepml local up --fresh``): only what stepml wrote goes."""
        for child in ("s3", "executions"):
            shutil.rmtree(self.path / child, ignore_errors=True)
        self.manifest_path.unlink(missing_ok=True)

    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {}
        manifest = json.loads(self.manifest_path.read_bytes())
        if manifest.get("format") != FORMAT:
            raise DataDirError(
                f"{self.manifest_path} has format {manifest.get('format')!r}; this stepml reads "
                f"format {FORMAT}"
            )
        return dict(manifest)

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        _write_atomically(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode())

    def physical_name(self, logical_id: str, make: Callable[[], str]) -> str:
        """The name kept for ``logical_id``, or ``make()``'s, kept from now on."""
        manifest = self.manifest()
        names = manifest.setdefault("names", {})
        if logical_id not in names:
            names[logical_id] = make()
            self._write_manifest(manifest)
        return str(names[logical_id])

    def bucket(self, name: str) -> BucketMirror:
        return BucketMirror(name, self.path / "s3" / name)

    def executions(self, logical_id: str) -> ExecutionArchive:
        return ExecutionArchive(self.path / "executions" / logical_id)


# -- S3 ------------------------------------------------------------------------------------------


class BucketMirror:
    """Every version of every object of one bucket, on disk, kept in step with moto's bucket."""

    def __init__(self, bucket: str, folder: Path) -> None:
        self.bucket = bucket
        self.folder = folder
        self._lock = threading.Lock()
        self._written: dict[str, tuple[str, ...]] = {}  # key → version ids on disk
        # key → {version id → its entry}: a version never changes, so it is read and hashed once
        # (a key with many versions, e.g. a re-uploaded CSV, costs only its new version).
        self._entries: dict[str, dict[str, dict[str, Any]]] = {}

    def _record_path(self, key: str) -> Path:
        return self.folder / "keys" / f"{_digest(key)}.json"

    def _blob_path(self, digest: str) -> Path:
        return self.folder / "blobs" / digest

    def sync_key(self, moto_bucket: Any, key: str) -> None:
        """Write what moto now holds under ``key`` (all its versions), or remove the record."""
        with self._lock:
            self._sync_locked(moto_bucket, key)

    def sync_bucket(self, moto_bucket: Any) -> None:
        """Bring every key in step (after a request that may touch many keys: a bulk delete)."""
        with self._lock:
            for key in sorted(set(moto_bucket.keys.keys()) | set(self._written)):
                self._sync_locked(moto_bucket, key)

    def _sync_locked(self, moto_bucket: Any, key: str) -> None:
        versions = list(moto_bucket.keys.getlist(key, []))
        signature = tuple(str(v.version_id) for v in versions)
        if self._written.get(key, ()) == signature:
            return
        if not versions:
            self._record_path(key).unlink(missing_ok=True)
            self._written.pop(key, None)
            self._entries.pop(key, None)
            return
        known = self._entries.get(key, {})
        entries = [
            known[version_id] if version_id != "null" and version_id in known else self._entry(version)
            for version_id, version in zip(signature, versions, strict=True)
        ]
        record = {"key": key, "versions": entries}
        _write_atomically(self._record_path(key), json.dumps(record, sort_keys=True).encode())
        self._written[key] = signature
        self._entries[key] = dict(zip(signature, entries, strict=True))

    def _entry(self, version: Any) -> dict[str, Any]:
        from moto.s3.models import FakeDeleteMarker

        entry: dict[str, Any] = {
            "version_id": str(version.version_id),
            "last_modified": _iso(version.last_modified),
        }
        if isinstance(version, FakeDeleteMarker):
            return {**entry, "delete_marker": True}
        value: bytes = version.value
        digest = hashlib.sha256(value).hexdigest()
        blob = self._blob_path(digest)
        if not blob.exists():
            _write_atomically(blob, value)
        return {
            **entry,
            "blob": digest,
            "etag": version.etag.strip('"'),
            "metadata": dict(version.metadata),
            "storage_class": version.storage_class,
            "encryption": version.encryption,
            "checksum_algorithm": version.checksum_algorithm,
            "checksum_value": version.checksum_value,
            "checksum_type": version.checksum_type,
        }

    def records(self) -> Iterator[dict[str, Any]]:
        folder = self.folder / "keys"
        if folder.is_dir():
            for path in sorted(folder.glob("*.json")):
                yield json.loads(path.read_bytes())

    def restore(self, moto_bucket: Any, account_id: str, region: str) -> int:
        """Load every kept object into moto's (empty) bucket, without S3 events; returns the count.

        Blobs no record names (written just before a kill, their record never was) are removed.
        """
        from moto.s3.models import FakeDeleteMarker, FakeKey

        _remove_temporaries(self.folder)
        used: set[str] = set()
        count = 0
        with self._lock:
            for record in self.records():
                key = record["key"]
                restored: list[Any] = []
                for entry in record["versions"]:
                    if entry.get("delete_marker"):
                        marks = restored[-1] if restored else FakeKey(key, b"", account_id, region)
                        marker = FakeDeleteMarker(marks)
                        marker._version_id = entry["version_id"]
                        marker.last_modified = dt.datetime.fromisoformat(entry["last_modified"])
                        restored.append(marker)
                        continue
                    obj = FakeKey(
                        name=key,
                        value=self._blob_path(entry["blob"]).read_bytes(),
                        account_id=account_id,
                        region_name=region,
                        storage=entry.get("storage_class"),
                        etag=entry["etag"],
                        is_versioned=moto_bucket.is_versioned,
                        version_id=entry["version_id"],
                        bucket_name=self.bucket,
                        encryption=entry.get("encryption"),
                        checksum_value=entry.get("checksum_value"),
                        checksum_type=entry.get("checksum_type"),
                    )
                    obj.checksum_algorithm = entry.get("checksum_algorithm")
                    obj.set_metadata(dict(entry.get("metadata") or {}))
                    obj.last_modified = dt.datetime.fromisoformat(entry["last_modified"])
                    used.add(entry["blob"])
                    restored.append(obj)
                moto_bucket.keys.setlist(key, restored)
                self._written[key] = tuple(entry["version_id"] for entry in record["versions"])
                self._entries[key] = {entry["version_id"]: entry for entry in record["versions"]}
                count += 1
            blobs = self.folder / "blobs"
            if blobs.is_dir():
                for blob in blobs.iterdir():
                    if blob.name not in used:
                        blob.unlink(missing_ok=True)
        return count


# -- Step Functions ------------------------------------------------------------------------------


class RestoredExecution:
    """A finished execution read back from disk, answering what moto's Step Functions API asks of
    an execution (list, describe, history). Restored executions never run again."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.name: str = record["name"]
        self.execution_arn: str = record["arn"]
        self.exec_arn = self.execution_arn
        self.state_machine_arn: str = record["state_machine_arn"]
        self.status: str = record["status"]
        self.start_date = _datetime(record["start_date"])
        self.stop_date = _datetime(record.get("stop_date"))
        self.execution_input: str = record.get("input") or "{}"
        self.output: str | None = record.get("output")
        self.output_details = {"included": True}
        self.error: str | None = record.get("error")
        self.cause: str | None = record.get("cause")
        self._events = list(record.get("events", []))

    def to_history_output(self) -> dict[str, Any]:
        return {"events": [dict(e) for e in self._events]}

    def stop(self, *args: Any, **kwargs: Any) -> None:
        """Stopping a finished execution changes nothing (Step Functions refuses it too)."""


def execution_record(execution: Any) -> dict[str, Any]:
    """What is kept of one of moto's executions (live or restored)."""
    try:
        events = list(execution.to_history_output().get("events", []))
    except AttributeError:  # not started yet: no worker, no history
        events = []
    output = execution.output
    if output is not None and not isinstance(output, str):
        output = json.dumps(output)
    status = execution.status
    return {
        "format": FORMAT,
        "name": execution.name,
        "arn": execution.execution_arn,
        "state_machine_arn": execution.state_machine_arn,
        "status": str(getattr(status, "value", status)),
        "start_date": _iso(execution.start_date),
        "stop_date": _iso(execution.stop_date),
        "input": execution.execution_input,
        "output": output if str(getattr(status, "value", status)) == "SUCCEEDED" else None,
        "error": execution.error,
        "cause": execution.cause,
        "events": [{**e, "timestamp": _iso(e["timestamp"])} for e in events],
    }


class ExecutionArchive:
    """The executions of one state machine, one record each."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._events_written: dict[str, int] = {}  # execution ARN → events on disk

    def _path(self, arn: str) -> Path:
        return self.folder / f"{_digest(arn)}.json"

    def save(self, execution: Any) -> None:
        # Read under the lock: a progress save and the final one racing must not write the
        # RUNNING state they read over the SUCCEEDED one.
        with self._lock:
            record = execution_record(execution)
            _write_atomically(self._path(record["arn"]), json.dumps(record, default=str).encode())
            self._events_written[record["arn"]] = len(record["events"])

    def save_progress(self, executions: list[Any]) -> None:
        """Keep the history of running executions as it grows (what a restart shows of them)."""
        for execution in executions:
            with contextlib.suppress(Exception):  # an execution not started yet has no status
                if str(execution.status) != "RUNNING":
                    continue
                events = len(execution.to_history_output().get("events", []))
                if events != self._events_written.get(execution.execution_arn):
                    self.save(execution)

    def restore(self) -> list[RestoredExecution]:
        """Every kept execution, oldest first; one that was running is recorded as aborted."""
        _remove_temporaries(self.folder)
        restored: list[RestoredExecution] = []
        if not self.folder.is_dir():
            return restored
        for path in sorted(self.folder.glob("*.json")):
            record = json.loads(path.read_bytes())
            if record["status"] == "RUNNING":
                record = _aborted(record)
                _write_atomically(path, json.dumps(record, default=str).encode())
            self._events_written[record["arn"]] = len(record["events"])
            restored.append(RestoredExecution(record))
        restored.sort(key=lambda e: e.start_date or dt.datetime.min.replace(tzinfo=dt.UTC))
        return restored


def _aborted(record: dict[str, Any]) -> dict[str, Any]:
    """A record of an execution its stack's end interrupted, as Step Functions ends a stopped one."""
    events = list(record.get("events") or [])
    last = events[-1]["timestamp"] if events else record["start_date"]
    previous = events[-1]["id"] if events else 0
    events.append(
        {
            "timestamp": last,
            "type": "ExecutionAborted",
            "id": previous + 1,
            "previousEventId": previous,
            "executionAbortedEventDetails": {"error": STOPPED_ERROR, "cause": STOPPED_CAUSE},
        }
    )
    return {
        **record,
        "status": "ABORTED",
        "stop_date": last,
        "error": STOPPED_ERROR,
        "cause": STOPPED_CAUSE,
        "events": events,
    }


# -- wiring into moto ----------------------------------------------------------------------------

_mirrors: dict[str, BucketMirror] = {}  # bucket name → mirror
_archives: dict[str, ExecutionArchive] = {}  # state machine ARN → archive
_registry_lock = threading.Lock()
_originals: dict[str, Any] = {}
_holds: dict[str, threading.Event] = {}  # bucket name → set once its objects are restored
_MUTATING = {"PUT", "POST", "DELETE"}


def hold_bucket(bucket: str) -> None:
    """Make requests for ``bucket``'s objects wait until :func:`release_bucket`: between the
    deployment that creates it and the restore that fills it, a client must not read an empty
    bucket, nor write what the restore would then replace."""
    with _registry_lock:
        _holds.setdefault(bucket, threading.Event())


def release_bucket(bucket: str) -> None:
    with _registry_lock:
        held = _holds.pop(bucket, None)
    if held is not None:
        held.set()


def _wait_while_held(full_url: str) -> None:
    if not _holds:
        return
    from urllib.parse import urlsplit

    parts = urlsplit(full_url)
    # Path-style (the local endpoint) or virtual-hosted-style addressing.
    for bucket in (parts.path.lstrip("/").split("/", 1)[0], (parts.hostname or "").split(".", 1)[0]):
        held = _holds.get(bucket)
        if held is not None:
            held.wait(_HOLD_SECONDS)


def register_bucket(mirror: BucketMirror) -> None:
    with _registry_lock:
        _mirrors[mirror.bucket] = mirror


def register_state_machine(arn: str, archive: ExecutionArchive) -> None:
    with _registry_lock:
        _archives[arn] = archive


def unregister(buckets: list[str], state_machines: list[str]) -> None:
    for bucket in buckets:
        release_bucket(bucket)
    with _registry_lock:
        for bucket in buckets:
            _mirrors.pop(bucket, None)
        for arn in state_machines:
            _archives.pop(arn, None)


def _moto_bucket(response: Any, bucket_name: str) -> Any | None:
    from moto.s3.exceptions import MissingBucket

    try:
        return response.backend.get_bucket(bucket_name)
    except MissingBucket:  # e.g. a DeleteBucket that just succeeded
        return None


def _key_response(self: Any, request: Any, full_url: str, headers: Any) -> Any:
    _wait_while_held(full_url)
    result = _originals["key_response"](self, request, full_url, headers)
    if request.method in _MUTATING:
        bucket_name = self.parse_bucket_name_from_url(request, full_url)
        mirror = _mirrors.get(bucket_name)
        bucket = _moto_bucket(self, bucket_name) if mirror else None
        if mirror is not None and bucket is not None:
            mirror.sync_key(bucket, self.parse_key_name())
    return result


def _bucket_response(self: Any, request: Any, full_url: str, headers: Any) -> Any:
    if request.method != "PUT":  # listings and bulk deletes wait; the bucket's settings do not
        _wait_while_held(full_url)
    result = _originals["bucket_response"](self, request, full_url, headers)
    if request.method in {"POST", "DELETE"}:  # bulk delete, browser-form uploads
        bucket_name = self.parse_bucket_name_from_url(request, full_url)
        mirror = _mirrors.get(bucket_name)
        bucket = _moto_bucket(self, bucket_name) if mirror else None
        if mirror is not None and bucket is not None:
            mirror.sync_bucket(bucket)
    return result


def _archive_of(execution: Any) -> ExecutionArchive | None:
    return _archives.get(str(getattr(execution, "state_machine_arn", "")))


def _execution_start(self: Any) -> None:
    _originals["execution_start"](self)
    archive = _archive_of(self)
    if archive is not None:
        archive.save(self)


def _execution_terminated(self: Any) -> None:
    _originals["terminated"](self)
    archive = _archive_of(self.execution)
    if archive is not None:
        archive.save(self.execution)


def install() -> None:
    """Route moto's S3 object writes and Step Functions executions through the registered
    mirrors and archives (idempotent; buckets and machines not registered are untouched)."""
    from moto.s3.responses import S3Response
    from moto.stepfunctions.parser.backend.execution import (
        BaseExecutionWorkerCommunication,
        Execution,
    )

    if _originals:
        return
    _originals.update(
        key_response=S3Response.key_response,
        bucket_response=S3Response.bucket_response,
        execution_start=Execution.start,
        terminated=BaseExecutionWorkerCommunication.terminated,
    )
    S3Response.key_response = _key_response  # type: ignore[method-assign]
    S3Response.bucket_response = _bucket_response  # type: ignore[method-assign]
    Execution.start = _execution_start  # type: ignore[method-assign]
    BaseExecutionWorkerCommunication.terminated = _execution_terminated  # type: ignore[method-assign]


def uninstall() -> None:
    from moto.s3.responses import S3Response
    from moto.stepfunctions.parser.backend.execution import (
        BaseExecutionWorkerCommunication,
        Execution,
    )

    if not _originals:
        return
    S3Response.key_response = _originals["key_response"]  # type: ignore[method-assign]
    S3Response.bucket_response = _originals["bucket_response"]  # type: ignore[method-assign]
    Execution.start = _originals["execution_start"]  # type: ignore[method-assign]
    BaseExecutionWorkerCommunication.terminated = _originals["terminated"]  # type: ignore[method-assign]
    _originals.clear()


class ProgressWriter:
    """Keeps the histories of a stack's running executions on disk as they grow."""

    def __init__(self, machines: dict[str, ExecutionArchive], backend: Any) -> None:
        self._machines = machines
        self._backend = backend
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stepml-local-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(_PROGRESS_SECONDS):
            for arn, archive in self._machines.items():
                with contextlib.suppress(Exception):
                    archive.save_progress(list(self._backend.describe_state_machine(arn).executions))
