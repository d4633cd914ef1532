"""Validate dataset: check an uploaded CSV and write its validation report."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from stepml.observability import correlate, stage_instruments
from stepml.settings import load_settings
from stepml.stages import validate_upload

logger, tracer, metrics = stage_instruments("validate")


@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: the state machine's input (the S3 event), run id and execution ARN."""
    correlate(logger, tracer, event)
    result = validate_upload(event, load_settings())
    correlate(logger, tracer, result)  # the dataset is known from here on
    if result.get("duplicate"):
        metrics.add_metric(name="DuplicateDeliveries", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="RowsValidated", unit=MetricUnit.Count, value=result["rows"])
        metrics.add_metric(name="ValidationWarnings", unit=MetricUnit.Count, value=result["warnings"])
    logger.info("dataset validated", extra={k: result.get(k) for k in ("rows", "columns", "warnings", "duplicate")})
    return result
