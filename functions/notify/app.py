"""Notify: one readable SNS message when a pipeline run fails, times out or is stopped."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger

from stepml.notify import notify
from stepml.settings import load_settings

logger = Logger(service="stepml")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: EventBridge's "Step Functions Execution Status Change" for the pipeline."""
    settings = load_settings()
    sent = notify(
        event,
        settings.client("stepfunctions"),
        settings.client("sns"),
        os.environ["STEPML_NOTIFY_TOPIC"],
        settings.region,
    )
    logger.info("run failure notified", extra=sent)
    return sent
