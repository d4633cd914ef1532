"""Monitor: captured traffic against the champion's reference; metrics, report, one alarm message."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from stepml.monitoring import key_figures, monitor, summary
from stepml.observability import NAMESPACE, SERVICE, stage_instruments
from stepml.settings import load_settings
from stepml.storage import S3Store

logger, tracer, metrics = stage_instruments("monitor")


@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: EventBridge Scheduler's fixed input ({}: every champion) or {"model", "since"}."""
    settings = load_settings()
    result = monitor(event or {}, S3Store(settings), settings.client("sns"), os.environ["STEPML_NOTIFY_TOPIC"])
    for report in result["reports"]:
        # One EMF line per model: the model is a dimension of its figures.
        figures = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
        figures.set_default_dimensions(stage="monitor", model=report["model"])
        for name, value in key_figures(report).items():
            unit = MetricUnit.Count if name == "CapturedRequests" else MetricUnit.NoUnit
            figures.add_metric(name=name, unit=unit, value=value)
        figures.flush_metrics()
        logger.info("model monitored", extra={"model": report["model"], "alarms": len(report["alarms"]),
                                              "requests": report["volume"]["requests"]})
    metrics.add_metric(name="MonitorAlarms", unit=MetricUnit.Count,
                       value=sum(len(r["alarms"]) for r in result["reports"]))
    if not (event or {}).get("model"):  # the schedule's run over every model: a summary of each
        result["reports"] = [summary(r) for r in result["reports"]]
    return result
