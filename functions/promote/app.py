"""Promote to champion: move the champion alias if the version still passes the quality gate."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from stepml.settings import load_settings
from stepml.stages import promote

logger = Logger(service="stepml")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: the evaluation stage's output (its gate passed)."""
    result = promote(event, load_settings())
    logger.info("promotion decided", extra={k: result[k] for k in ("dataset", "run_id", "version", "promoted")})
    return result
