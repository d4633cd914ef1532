"""Prediction API: serve a dataset's champion (or ?version= / ?alias=) over the HTTP API."""

from __future__ import annotations

from typing import Any

from stepml.api import handle
from stepml.serving import ModelServer
from stepml.settings import Settings, load_settings
from stepml.storage import S3Store

_servers: dict[Settings, ModelServer] = {}


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: an API Gateway HTTP API (payload format 2.0) request."""
    settings = load_settings()
    # One server per bucket, kept across warm invocations: it caches loaded models.
    server = _servers.get(settings)
    if server is None:
        server = _servers[settings] = ModelServer(S3Store(settings))
    return handle(event, server)
