"""Evaluate and register: hold-out metrics, a new model version, champion if it earns it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from stepml.settings import load_settings
from stepml.stages import evaluate_and_register

logger = Logger(service="stepml")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: the training stage's output."""
    result = evaluate_and_register(event, load_settings())
    logger.info("model registered", extra={"dataset": result["dataset"], "version": result["version"], "gate_passed": result["gate"]["passed"]})
    return result
