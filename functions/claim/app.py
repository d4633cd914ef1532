"""Claim upload: take the uploaded object version for this run and say which engine may train it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from stepml.observability import correlate, stage_instruments
from stepml.settings import load_settings
from stepml.stages import claim_upload

logger, tracer, metrics = stage_instruments("claim")


@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: the state machine's input (the S3 event), run id, execution ARN and upload limits."""
    correlate(logger, tracer, event)
    result = claim_upload(event, load_settings())
    correlate(logger, tracer, result)
    if result.get("duplicate"):
        metrics.add_metric(name="DuplicateDeliveries", unit=MetricUnit.Count, value=1)
    logger.info("upload claimed", extra={k: result.get(k) for k in ("duplicate", "engine")}
                | {"bytes": result["source"].get("size")})
    return dict(result)
