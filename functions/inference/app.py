"""Prediction API: serve a dataset's champion (or ?version= / ?alias=) as ONNX over the HTTP API."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from stepml.api import handle
from stepml.observability import api_instruments
from stepml.serving import ModelServer
from stepml.settings import current_environment, load_settings
from stepml.storage import S3Store

logger, metrics = api_instruments("inference")
_servers: dict[tuple[str | None, ...], ModelServer] = {}
_SETTINGS_KEYS = ("STEPML_BUCKET", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION")


def _predicted(model: str, version: int, rows: int) -> None:
    metrics.add_dimension(name="model", value=model)
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=rows)


def _unseen_categories(model: str, version: int, count: int) -> None:
    metrics.add_metric(name="UnseenCategories", unit=MetricUnit.Count, value=count)
    metrics.add_metadata(key="version", value=version)


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: an API Gateway HTTP API (payload format 2.0) request."""
    # The request id as correlation id, read directly: a JMESPath correlation_id_path costs ~20 us.
    logger.set_correlation_id((event.get("requestContext") or {}).get("requestId"))
    # One server per bucket/endpoint, kept across warm invocations: it caches sessions and alias
    # lookups. Keyed by the raw settings values, so a warm request does not rebuild Settings.
    env = current_environment()
    key = tuple(env.get(name) for name in _SETTINGS_KEYS)
    server = _servers.get(key)
    if server is None:
        server = _servers[key] = ModelServer(
            S3Store(load_settings(env)), on_unseen_categories=_unseen_categories, on_predicted=_predicted
        )
    return handle(event, server)
