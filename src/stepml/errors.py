"""The project's exceptions: their class names are a contract with the state machine.

A Lambda handler lets these propagate; the Python runtime reports the class name as ``errorType``
and Step Functions matches it in ``Retry``/``Catch`` ``ErrorEquals``. So every name used in
``statemachine/pipeline.asl.json`` must be a class defined here (a test checks it), and the
pipeline raises these exact classes, never subclasses, wherever the state machine must tell them
apart.
"""

from __future__ import annotations

from collections.abc import Iterable

#: The longest message an error carries (characters). A run's cause travels in Step Functions
#: state, capped at 256 KB; a message quoting user input (column names, values) could grow with it.
MAX_MESSAGE = 8_000
#: How many items :func:`listing` names before counting the rest.
LISTED = 20


def listing(items: Iterable[object], limit: int = LISTED, width: int = 100) -> str:
    """``items`` comma-separated, the first ``limit`` only, each cut to ``width`` characters, then
    a count of the rest ("a, b, c and 11,997 more"): a message stays short whatever the input."""
    shown: list[str] = []
    total = 0
    for item in items:
        total += 1
        if len(shown) < limit:
            text = str(item)
            shown.append(text if len(text) <= width else f"{text[:width]}…")
    more = total - len(shown)
    return ", ".join(shown) + (f" and {more:,} more" if more else "")


def bounded(message: str, limit: int = MAX_MESSAGE) -> str:
    """``message`` cut to ``limit`` characters, saying how many were left out."""
    if len(message) <= limit:
        return message
    return f"{message[:limit]}… ({len(message) - limit:,} more characters)"


class StepmlError(Exception):
    """Base class of every error stepml raises on purpose.

    The message is cut to :data:`MAX_MESSAGE` characters (:func:`bounded`), so no error built from
    user input can outgrow a Step Functions payload.
    """

    def __init__(self, *args: object) -> None:
        if args and isinstance(args[0], str):
            args = (bounded(args[0]), *args[1:])
        super().__init__(*args)


class DataError(StepmlError):
    """The uploaded data cannot be used (not a CSV, empty, no target column...). Never retried."""


class ConfigError(StepmlError):
    """A dataset config or a request names something invalid. Never retried."""


class GateRefused(ConfigError):
    """A promotion by hand that the quality gate refuses (only a forced promotion, with a reason,
    overrides it). ``decision`` is the gate's verdict: metric, values, reason."""

    def __init__(self, message: str, decision: dict[str, object]) -> None:
        super().__init__(message)
        self.decision = decision


class TransientError(StepmlError):
    """A temporary failure (throttling, a network blip): the state machine retries it."""


class ModelExportError(StepmlError):
    """The trained pipeline cannot be served as ONNX: conversion failed, or the ONNX graph's
    predictions disagree with scikit-learn's on the hold-out set. Never retried."""


class ArtifactIntegrityError(StepmlError):
    """A staged artifact is not the one Train wrote: its SHA-256 differs from the digest Train
    handed over in the state (or there is no digest to check). Nothing is loaded from it, and
    it is never retried: the same bytes would fail again."""


class NotFoundError(StepmlError):
    """A model, version or alias that does not exist."""


class RequestError(StepmlError):
    """An API request that cannot be served as sent (maps to an HTTP 4xx)."""

    def __init__(
        self, message: str, status: int = 400, details: list[dict[str, object]] | None = None, total: int | None = None
    ):
        super().__init__(message)
        self.status = status
        self.details = details or []
        #: How many problems there were: ``details`` lists the first of them only.
        self.total = len(self.details) if total is None else total


#: The error names the state machine may match, with what they mean to a user.
STATE_MACHINE_ERRORS = {
    cls.__name__: cls
    for cls in (DataError, ConfigError, TransientError, ModelExportError, ArtifactIntegrityError)
}
