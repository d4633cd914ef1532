"""Prediction API: serve a dataset's champion (or ?version= / ?alias=) as ONNX over the HTTP API."""

from __future__ import annotations

from typing import Any

from stepml.api import handle
from stepml.observability import RequestMetrics
from stepml.serving import ModelServer
from stepml.settings import current_environment, load_settings
from stepml.storage import S3Store

# No Powertools here: its imports cost ~0.12 s of the 0.5 s cold-start budget (observability.py).
metrics = RequestMetrics("inference")
_servers: dict[tuple[str | None, ...], ModelServer] = {}
_SETTINGS_KEYS = ("STEPML_BUCKET", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION")


def _predicted(model: str, version: int, rows: int) -> None:
    metrics.add("Predictions", rows, model=model)


def _unseen_categories(model: str, version: int, count: int) -> None:
    metrics.add("UnseenCategories", count, model=model, version=version)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: an API Gateway HTTP API (payload format 2.0) request."""
    # One server per bucket/endpoint, kept across warm invocations: it caches sessions and alias
    # lookups. Keyed by the raw settings values, so a warm request does not rebuild Settings.
    env = current_environment()
    key = tuple(env.get(name) for name in _SETTINGS_KEYS)
    server = _servers.get(key)
    if server is None:
        server = _servers[key] = ModelServer(
            S3Store(load_settings(env)), on_unseen_categories=_unseen_categories, on_predicted=_predicted
        )
    try:
        return handle(event, server)
    finally:
        metrics.flush(getattr(context, "function_name", None))
