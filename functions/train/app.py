"""Train model: fit the recipe's pipeline on the training split."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from stepml.observability import correlate, stage_instruments
from stepml.settings import load_settings
from stepml.stages import train

logger, tracer, metrics = stage_instruments("train")


@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: the preprocessing stage's output."""
    correlate(logger, tracer, event)
    result = train(event, load_settings())
    metrics.add_metric(name="TrainingSeconds", unit=MetricUnit.Seconds, value=result["train_seconds"])
    metrics.add_metric(name="ModelBytes", unit=MetricUnit.Bytes, value=result["model_bytes"])
    logger.info("model trained", extra={k: result[k] for k in ("train_seconds", "model_bytes")})
    return result
