"""Verify ONNX export: run the exported model on the test split and compare with scikit-learn."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from stepml.observability import correlate, stage_instruments
from stepml.onnx_verify import verify_export
from stepml.settings import load_settings

logger, tracer, metrics = stage_instruments("verify")


@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: the training stage's output."""
    correlate(logger, tracer, event)
    result = verify_export(event, load_settings())
    check = result["onnx_verification"]
    metrics.add_metric(name="OnnxMaxDifference", unit=MetricUnit.NoUnit, value=check["max_abs_difference"])
    metrics.add_metric(name="OnnxDivergentRows", unit=MetricUnit.Count, value=check["divergent_rows"])
    logger.info("ONNX export verified", extra=check)
    return result
