"""Settings read once, at the edge (a Lambda handler or the CLI), into a small validated object.

The core never reads environment variables itself: handlers call :func:`load_settings` and pass the
result down. Offline, every Lambda function runs inside one Python process, so a function's own
environment (from template.yaml) cannot live in the process-wide ``os.environ``; the local Lambda
runner hands it over with :func:`function_environment` instead, per call and per thread.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from stepml.errors import ConfigError

_function_env: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "stepml_function_env", default=None
)


@contextlib.contextmanager
def function_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Run the enclosed block (one Lambda invocation) with ``env`` as its environment."""
    token = _function_env.set(dict(env))
    try:
        yield
    finally:
        _function_env.reset(token)


def current_environment() -> Mapping[str, str]:
    """The environment of the running function: the local runner's, else the process's."""
    env = _function_env.get()
    return env if env is not None else os.environ


@dataclass(frozen=True)
class Settings:
    """Where stepml's data lives and how to reach AWS (or the offline endpoint)."""

    bucket: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None

    def client(self, service: str):
        """A boto3 client for ``service``, aimed at the offline endpoint when one is set."""
        import boto3  # imported lazily: clients are never created at import time

        kwargs: dict[str, str] = {"region_name": self.region}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        if self.access_key_id and self.secret_access_key:
            kwargs["aws_access_key_id"] = self.access_key_id
            kwargs["aws_secret_access_key"] = self.secret_access_key
        return boto3.client(service, **kwargs)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (default: the running function's environment)."""
    env = current_environment() if env is None else env
    bucket = env.get("STEPML_BUCKET", "").strip()
    if not bucket:
        raise ConfigError("STEPML_BUCKET is not set: the function does not know its data bucket")
    return Settings(
        bucket=bucket,
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
        secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
    )
