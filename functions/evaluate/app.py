"""Evaluate and register: hold-out metrics, a new model version, champion if it earns it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from stepml.observability import correlate, stage_instruments
from stepml.settings import load_settings
from stepml.stages import evaluate_and_register

logger, tracer, metrics = stage_instruments("evaluate")


@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: the training stage's output."""
    correlate(logger, tracer, event)
    result = evaluate_and_register(event, load_settings())
    passed = bool(result["gate"]["passed"])
    metrics.add_metric(name="GatePassed", unit=MetricUnit.Count, value=int(passed))
    metrics.add_metric(name="GateFailed", unit=MetricUnit.Count, value=int(not passed))
    primary = result["primary_metric"]
    metrics.add_metric(name="PrimaryMetric", unit=MetricUnit.NoUnit, value=result["metrics"][primary])
    metrics.add_metadata(key="primary_metric", value=primary)
    logger.info("model registered", extra={"version": result["version"], "gate_passed": passed, primary: result["metrics"][primary]})
    return result
