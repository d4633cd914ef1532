"""Where stepml keeps objects: a :class:`Store` protocol and its two backends.

Everything the pipeline keeps lives in one bucket (see :mod:`stepml.keys` for the layout).
:class:`S3Store` is that bucket; :class:`DirectoryStore` is the same protocol on a local folder
(the inference benchmark, and tests that need no moto). S3 clients are created lazily from
:class:`stepml.settings.Settings`, never at import time.

Conditional writes follow S3: ``If-None-Match: *`` creates only, ``If-Match: <etag>`` replaces only
that content. Losing the condition is :class:`PreconditionFailed` (S3's 412, or 404 when the
object of an ``If-Match`` is gone); a concurrent conditional write is :class:`WriteConflict`
(S3's 409 ConditionalRequestConflict): nothing was decided, so the caller retries.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from stepml.errors import DataError, TransientError
from stepml.settings import Settings

# S3 error codes that mean "try again later": the state machine retries TransientError.
_TRANSIENT_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}


class PreconditionFailed(Exception):
    """A conditional write lost: the object already exists (If-None-Match) or changed or is gone
    (If-Match)."""


class WriteConflict(Exception):
    """S3's 409 ConditionalRequestConflict: another conditional write to the key was in flight.

    Neither won nor lost: retry (for If-Match, re-read the ETag first). Not a state-machine
    error: callers retry it, and raise :class:`TransientError` when retries run out.
    """


@dataclass
class ObjectInfo:
    """What S3 says about one object (the bits lineage needs)."""

    key: str
    size: int
    etag: str
    version_id: str | None


class Store(Protocol):
    """What the registry, deliveries and serving need of a store: keyed bytes and JSON,
    conditional writes, listings by prefix."""

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes: ...

    def get_json(self, key: str) -> Any: ...

    def find_json(self, key: str) -> Any | None: ...

    def find_json_with_etag(self, key: str) -> tuple[Any, str] | None: ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def put_bytes(self, key: str, body: bytes, *, content_type: str = ..., if_none_match: bool = ...,
                  if_match: str | None = ...) -> str: ...

    def put_json(self, key: str, value: Any, **conditions: Any) -> str: ...

    def list_keys(self, prefix: str) -> Iterator[str]: ...

    def list_prefixes(self, prefix: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...


def json_bytes(value: Any) -> bytes:
    """How every store writes JSON (stable, readable)."""
    return json.dumps(value, indent=2, sort_keys=True, default=str).encode()


@dataclass
class S3Store:
    """Read and write the objects of one bucket."""

    settings: Settings
    _client: Any = field(default=None, init=False, repr=False)

    @property
    def bucket(self) -> str:
        return self.settings.bucket

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.settings.client("s3")
        return self._client

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes:
        """The object's content; a missing object is a :class:`DataError` naming the key."""
        kwargs: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            return self.client.get_object(**kwargs)["Body"].read()
        except Exception as exc:  # botocore's ClientError, without importing botocore here
            code = _error_code(exc)
            if code in {"NoSuchKey", "404", "NoSuchVersion"}:
                raise DataError(f"s3://{self.bucket}/{key} does not exist") from exc
            _raise_transient(exc, key)
            raise

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def find_json_with_etag(self, key: str) -> tuple[Any, str] | None:
        """The object's JSON content and the ETag of exactly that content, or None."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _error_code(exc) in {"NoSuchKey", "404"}:
                return None
            _raise_transient(exc, key)
            raise
        return json.loads(response["Body"].read()), str(response.get("ETag", "")).strip('"')

    def find_json(self, key: str) -> Any | None:
        """The object's JSON content, or None when it does not exist."""
        try:
            return self.get_json(key)
        except DataError:
            return None

    def head(self, key: str) -> ObjectInfo | None:
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return None
            _raise_transient(exc, key)
            raise
        return ObjectInfo(
            key=key,
            size=int(response.get("ContentLength", 0)),
            etag=str(response.get("ETag", "")).strip('"'),
            version_id=response.get("VersionId"),
        )

    def put_bytes(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str:
        """Write ``body``; returns the new ETag. Conditional writes raise PreconditionFailed."""
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": body,
            "ContentType": content_type,
        }
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        if if_match:
            kwargs["IfMatch"] = if_match
        try:
            return str(self.client.put_object(**kwargs).get("ETag", "")).strip('"')
        except Exception as exc:
            code = _error_code(exc)
            if code in {"PreconditionFailed", "412"}:
                raise PreconditionFailed(key) from exc
            if if_match and code in {"NoSuchKey", "404"}:
                # If-Match on an object deleted meanwhile: the content it names is gone.
                raise PreconditionFailed(key) from exc
            if code in {"ConditionalRequestConflict", "409"}:
                raise WriteConflict(f"a concurrent conditional write to {key} was in flight") from exc
            _raise_transient(exc, key)
            raise

    def put_json(self, key: str, value: Any, **conditions: Any) -> str:
        return self.put_bytes(key, json_bytes(value), content_type="application/json", **conditions)

    def list_keys(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    def list_prefixes(self, prefix: str) -> list[str]:
        """The 'folders' directly under ``prefix`` (which should end in '/')."""
        paginator = self.client.get_paginator("list_objects_v2")
        found: list[str] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            found.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        return found

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


class DirectoryStore:
    """The :class:`Store` protocol on a local folder: ``root/<key>`` (stdlib only).

    ETags are the MD5 of the content, as S3's are for single-part uploads. Conditional writes
    are atomic across threads and processes (an exclusive lock on ``root/.lock``), and every write
    lands whole (a temporary file renamed into place).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._thread_lock = threading.Lock()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not key or key.startswith("/") or ".." in key.split("/") or not path.is_relative_to(self.root.resolve()):
            raise DataError(f"{key!r} is not a key inside {self.root}")
        return path

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise DataError(f"{path} does not exist")
        return path.read_bytes()

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def find_json(self, key: str) -> Any | None:
        path = self._path(key)
        return json.loads(path.read_bytes()) if path.is_file() else None

    def find_json_with_etag(self, key: str) -> tuple[Any, str] | None:
        path = self._path(key)
        if not path.is_file():
            return None
        data = path.read_bytes()
        return json.loads(data), hashlib.md5(data).hexdigest()

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        data = path.read_bytes()
        return ObjectInfo(key=key, size=len(data), etag=hashlib.md5(data).hexdigest(), version_id=None)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, open(self.root / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def put_bytes(self, key: str, body: bytes, *, content_type: str = "application/octet-stream",
                  if_none_match: bool = False, if_match: str | None = None) -> str:
        path = self._path(key)
        if not (if_none_match or if_match):
            self._write(path, body)
            return hashlib.md5(body).hexdigest()
        with self._locked():
            if if_none_match and path.exists():
                raise PreconditionFailed(key)
            if if_match:
                current = path.read_bytes() if path.is_file() else None
                if current is None or hashlib.md5(current).hexdigest() != if_match.strip('"'):
                    raise PreconditionFailed(key)
            self._write(path, body)
        return hashlib.md5(body).hexdigest()

    @staticmethod
    def _write(path: Path, body: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_bytes(body)
        os.replace(temporary, path)

    def put_json(self, key: str, value: Any, **conditions: Any) -> str:
        return self.put_bytes(key, json_bytes(value), content_type="application/json", **conditions)

    def list_keys(self, prefix: str) -> Iterator[str]:
        # Like S3, a prefix is a string prefix, not a folder: list the folder it ends in, filter.
        folder = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not folder.is_dir():
            return iter(())
        found = (p.relative_to(self.root).as_posix() for p in folder.rglob("*") if p.is_file())
        return iter(sorted(k for k in found if k.startswith(prefix) and not k.rsplit("/", 1)[-1].startswith(".")))

    def list_prefixes(self, prefix: str) -> list[str]:
        """The 'folders' directly under ``prefix`` (which should end in '/')."""
        folder = self.root / prefix
        if not prefix.endswith("/") or not folder.is_dir():
            return []
        return sorted(f"{prefix}{p.name}/" for p in folder.iterdir() if p.is_dir())

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def jitter(attempt: int) -> None:
    """Sleep a little, more with each attempt (full jitter: contenders that lost together must not
    all retry together again)."""
    time.sleep(random.uniform(0.005, 0.02 * (attempt + 1)))


def put_json_once(store: Store, key: str, value: Any, attempts: int = 8, **conditions: Any) -> str:
    """A conditional JSON write that retries S3's 409 (a concurrent conditional write in flight)
    until the condition is decided: it then succeeds or raises :class:`PreconditionFailed`."""
    for attempt in range(attempts):
        try:
            return store.put_json(key, value, **conditions)
        except WriteConflict:
            jitter(attempt)
    raise TransientError(f"{key}: concurrent conditional writes kept conflicting; try again")


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _raise_transient(exc: Exception, key: str) -> None:
    if _error_code(exc) in _TRANSIENT_CODES or type(exc).__name__ in {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
    }:
        raise TransientError(f"S3 was unavailable for {key}: {exc}") from exc
