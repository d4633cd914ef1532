"""Preprocess data: clean the upload and write the train/test splits."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from stepml.observability import correlate, stage_instruments
from stepml.settings import load_settings
from stepml.stages import preprocess

logger, tracer, metrics = stage_instruments("preprocess")


@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: the validation stage's output."""
    correlate(logger, tracer, event)
    result = preprocess(event, load_settings())
    for name, key in (("TrainRows", "train_rows"), ("TestRows", "test_rows"), ("DroppedRows", "dropped_rows")):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=result[key])
    logger.info("dataset split", extra={k: result[k] for k in ("train_rows", "test_rows", "dropped_rows")})
    return result
