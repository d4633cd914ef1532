"""Prediction API: serve a dataset's champion (or ?version= / ?alias=) as ONNX over the HTTP API."""

from __future__ import annotations

from typing import Any

from stepml.api import emit_unseen_categories, handle
from stepml.serving import ModelServer
from stepml.settings import Settings, load_settings
from stepml.storage import S3Store

_servers: dict[Settings, ModelServer] = {}


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: an API Gateway HTTP API (payload format 2.0) request."""
    settings = load_settings()
    # One server per bucket, kept across warm invocations: it caches sessions and alias lookups.
    server = _servers.get(settings)
    if server is None:
        server = _servers[settings] = ModelServer(S3Store(settings), on_unseen_categories=emit_unseen_categories)
    return handle(event, server)
