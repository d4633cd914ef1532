"""Train model: fit the recipe's pipeline on the training split."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from stepml.settings import load_settings
from stepml.stages import train

logger = Logger(service="stepml")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: the preprocessing stage's output."""
    result = train(event, load_settings())
    logger.info("model trained", extra={k: result[k] for k in ("dataset", "run_id", "train_seconds")})
    return result
