"""A thin S3 store: bytes and JSON in and out, conditional writes, listings.

Everything the pipeline keeps lives in one bucket (see :mod:`stepml.keys` for the layout). Clients
are created lazily from :class:`stepml.settings.Settings`, never at import time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from stepml.errors import DataError, TransientError
from stepml.settings import Settings

# S3 error codes that mean "try again later": the state machine retries TransientError.
_TRANSIENT_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}


class PreconditionFailed(Exception):
    """A conditional write lost: the object already exists (If-None-Match) or changed (If-Match)."""


@dataclass
class ObjectInfo:
    """What S3 says about one object (the bits lineage needs)."""

    key: str
    size: int
    etag: str
    version_id: str | None


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
            if _error_code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                raise PreconditionFailed(key) from exc
            _raise_transient(exc, key)
            raise

    def put_json(self, key: str, value: Any, **conditions: Any) -> str:
        body = json.dumps(value, indent=2, sort_keys=True, default=str).encode()
        return self.put_bytes(key, body, content_type="application/json", **conditions)

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
