"""Registry API: list versions, history and diffs; promote and roll back (for the UI)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from stepml.observability import stage_instruments
from stepml.registry_api import handle
from stepml.settings import load_settings
from stepml.storage import S3Store

logger, tracer, metrics = stage_instruments("registry")


@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: an API Gateway HTTP API (payload format 2.0) request."""
    result = handle(event, S3Store(load_settings()))
    status = int(result.get("statusCode", 500))
    metrics.add_metric(name="RejectedRequests" if status >= 400 else "Requests", unit=MetricUnit.Count, value=1)
    logger.info("registry request", extra={"route": event.get("routeKey"), "status": status})
    return result
