"""Verify ONNX export: run the exported model on the test split and compare with scikit-learn."""

from __future__ import annotations

from typing import Any

from stepml.onnx_verify import verify_export
from stepml.settings import load_settings


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Event: the training stage's output."""
    return verify_export(event, load_settings())
