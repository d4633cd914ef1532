"""Notify: one readable SNS message when a pipeline run fails, times out or is stopped."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from stepml.notify import notify
from stepml.observability import stage_instruments
from stepml.settings import load_settings

logger, tracer, metrics = stage_instruments("notify")


@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: EventBridge's "Step Functions Execution Status Change" for the pipeline."""
    logger.set_correlation_id((event.get("detail") or {}).get("executionArn"))
    settings = load_settings()
    sent = notify(
        event,
        settings.client("stepfunctions"),
        settings.client("sns"),
        os.environ["STEPML_NOTIFY_TOPIC"],
        settings.region,
    )
    metrics.add_metric(name="FailedRunsNotified", unit=MetricUnit.Count, value=1)
    logger.info("run failure notified", extra=sent)
    return sent
