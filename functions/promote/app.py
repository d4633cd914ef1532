"""Promote to champion: move the champion alias if the version still passes the quality gate."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from stepml.observability import correlate, stage_instruments
from stepml.settings import load_settings
from stepml.stages import promote

logger, tracer, metrics = stage_instruments("promote")


@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: the evaluation stage's output (its gate passed)."""
    correlate(logger, tracer, event)
    result = promote(event, load_settings())
    metrics.add_metric(name="Promotions", unit=MetricUnit.Count, value=int(bool(result["promoted"])))
    logger.info("promotion decided", extra={k: result[k] for k in ("version", "promoted", "decision")})
    return result
