"""Validate dataset: check an uploaded CSV and write its validation report."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from stepml.settings import load_settings
from stepml.stages import validate_upload

logger = Logger(service="stepml")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: the state machine's input (the S3 event), run id and execution ARN."""
    result = validate_upload(event, load_settings())
    logger.info("dataset validated", extra={k: result.get(k) for k in ("dataset", "run_id", "rows", "duplicate")})
    return result
