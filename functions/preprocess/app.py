"""Preprocess data: clean the upload and write the train/test splits."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from stepml.settings import load_settings
from stepml.stages import preprocess

logger = Logger(service="stepml")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: the validation stage's output."""
    result = preprocess(event, load_settings())
    logger.info("dataset split", extra={k: result[k] for k in ("dataset", "run_id", "train_rows", "test_rows")})
    return result
