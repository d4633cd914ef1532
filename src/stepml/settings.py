"""Settings read once, at the edge (a Lambda handler or the CLI), into a small validated object.

The core never reads environment variables itself: handlers call :func:`load_settings` and pass the
result down. Offline, each function runs in a process of its own with its own ``os.environ``, as
on Lambda; :func:`function_environment` lets a test hand a handler called in-process an
environment of its own, per call and per thread.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


#: The named AWS profile ``stepml local up`` writes for the offline stack's administrator.
LOCAL_PROFILE = "stepml-local"


def aws_credentials_file(environ: Mapping[str, str] | None = None) -> Path:
    """The AWS shared credentials file (``AWS_SHARED_CREDENTIALS_FILE``, else ~/.aws/credentials)."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("AWS_SHARED_CREDENTIALS_FILE") or Path.home() / ".aws" / "credentials")


def aws_config_file(environ: Mapping[str, str] | None = None) -> Path:
    """The AWS config file (``AWS_CONFIG_FILE``, else ~/.aws/config)."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("AWS_CONFIG_FILE") or Path.home() / ".aws" / "config")


@dataclass(frozen=True)
class Settings:
    """Where stepml's data lives and how to reach AWS (or the offline endpoint).

    Credentials are boto3's default chain: inside Lambda that is the function's role — the
    ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` *and* ``AWS_SESSION_TOKEN`` Lambda sets; a
    role's temporary keys are refused without their token, so keys are never copied out of the
    environment and passed on one by one. Only a client of the user's own (the CLI, the UI) may
    name a ``profile`` — the offline stack's administrator is the named profile ``stepml-local``.
    """

    bucket: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    profile: str | None = None
    #: boto3 keyword arguments with keys: only for the offline stack's administrator (tests, demo).
    credentials: Mapping[str, str] | None = None

    def client(self, service: str, config: Any = None) -> Any:
        """A boto3 client for ``service``, aimed at the offline endpoint when one is set
        (``config``: a ``botocore.config.Config``, e.g. a longer read timeout)."""
        # imported lazily: clients are never created at import time. Any: the boto3 stubs type a
        # client by a literal service name, and ``service`` is any name.
        boto3: Any = importlib.import_module("boto3")

        kwargs: dict[str, Any] = {"region_name": self.region}
        if config is not None:
            kwargs["config"] = config
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        if self.credentials:
            kwargs.update(self.credentials)
        elif self.profile:
            return boto3.Session(profile_name=self.profile).client(service, **kwargs)
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
    )
