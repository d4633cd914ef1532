"""Registry API: list versions, history and diffs; promote and roll back (for the UI)."""

from __future__ import annotations

from typing import Any

from stepml.registry_api import handle
from stepml.settings import load_settings
from stepml.storage import S3Store


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: an API Gateway HTTP API (payload format 2.0) request."""
    return handle(event, S3Store(load_settings()))
