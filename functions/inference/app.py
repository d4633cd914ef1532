"""Prediction API: serve a dataset's champion (or ?version= / ?alias=) as ONNX over the HTTP API."""

from __future__ import annotations

from typing import Any

from stepml.api import emit_unseen_categories, handle
from stepml.serving import ModelServer
from stepml.settings import current_environment, load_settings
from stepml.storage import S3Store

_servers: dict[tuple[str | None, ...], ModelServer] = {}
_SETTINGS_KEYS = ("STEPML_BUCKET", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: an API Gateway HTTP API (payload format 2.0) request."""
    # One server per bucket/endpoint, kept across warm invocations: it caches sessions and alias
    # lookups. Keyed by the raw settings values, so a warm request does not rebuild Settings.
    env = current_environment()
    key = tuple(env.get(name) for name in _SETTINGS_KEYS)
    server = _servers.get(key)
    if server is None:
        store = S3Store(load_settings(env))
        server = _servers[key] = ModelServer(store, on_unseen_categories=emit_unseen_categories)
    return handle(event, server)
